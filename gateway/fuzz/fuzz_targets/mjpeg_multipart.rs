//! Fuzz target: an MJPEG camera's multipart body, split into arbitrary pushes.
#![no_main]

#[allow(dead_code)]
#[path = "../../src/camera/multipart.rs"]
mod multipart;

use libfuzzer_sys::fuzz_target;

const MAX_PART: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let Ok(mut parser) = multipart::MultipartParser::new("frame", MAX_PART) else { return };
    let step = usize::from(split).max(1);
    for chunk in rest.chunks(step) {
        parser.push(chunk);
        for _ in 0..64 {
            match parser.next_part() {
                Ok(Some(part)) => assert!(part.len() <= MAX_PART),
                Ok(None) => break,
                Err(_) => {}
            }
        }
        // The buffer stays bounded whatever the camera sends.
        assert!(parser.buffered_len() <= MAX_PART + 64 * 1024 + step);
    }
    let _ = multipart::boundary_from_content_type(&String::from_utf8_lossy(rest));
});
