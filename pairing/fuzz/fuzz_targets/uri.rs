//! Fuzz target: the pairing URI parser (text from a QR code anyone can print).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(uri) = latchkey_pairing::PairingUri::parse(text) {
            // Whatever parses must encode and parse back to the same value.
            let again = latchkey_pairing::PairingUri::parse(&uri.encode());
            assert_eq!(again.ok(), Some(uri));
        }
    }
});
