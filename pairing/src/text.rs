//! Text from outside (device names, ids from paths, cameras' and routers' error texts)
//! made safe to show, and the rules for device names. Both ends use these functions,
//! so the gateway's CLI and the phone's CLI print the same escapes.
//!
//! [`escape`] turns every character that could steer a terminal or hide itself into a
//! visible `\u{..}`: C0 controls (ESC, newline, ...), DEL, C1 controls (U+0080..U+009F,
//! which some terminals obey like ESC sequences), bidi controls, zero-width and other
//! invisible formatting characters. [`name_skeleton`] is the comparison key for names:
//! two names with the same skeleton look alike and cannot both be used.

use std::borrow::Cow;

/// True for characters that must never reach an output raw: controls, bidi controls,
/// zero-width and other invisible formatting characters, and unassigned noncharacters.
pub fn is_hidden_or_control(c: char) -> bool {
    let u = u32::from(c);
    c.is_control() // C0, DEL, C1
        || matches!(u,
            0x00AD            // soft hyphen
            | 0x034F          // combining grapheme joiner
            | 0x061C          // arabic letter mark
            | 0x115F | 0x1160 | 0x3164 | 0xFFA0 // hangul fillers
            | 0x17B4 | 0x17B5
            | 0x180B..=0x180F // mongolian selectors and vowel separator
            | 0x200B..=0x200F // zero-width space/joiners, LRM, RLM
            | 0x2028 | 0x2029 // line and paragraph separators
            | 0x202A..=0x202E // bidi embeddings and overrides
            | 0x2060..=0x206F // word joiner, invisible operators, bidi isolates
            | 0xFE00..=0xFE0F // variation selectors
            | 0xFEFF          // zero-width no-break space
            | 0xFFF9..=0xFFFB // interlinear annotations
            | 0xFFFE | 0xFFFF
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF // tags, variation selectors supplement
        )
}

/// `s` with every [`is_hidden_or_control`] character written as `\u{XXXX}`; borrowed
/// when nothing needed escaping.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_hidden_or_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_hidden_or_control(c) {
            out.push_str(&format!("\\u{{{:04x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`escape`], then cut to at most `width` characters (an ellipsis marks a cut), so a
/// long value cannot draw columns of its own in a table.
pub fn cell(s: &str, width: usize) -> String {
    let escaped = escape(s);
    if escaped.chars().count() <= width {
        return escaped.into_owned();
    }
    let mut out: String = escaped.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Longest device name, in bytes.
pub const MAX_DEVICE_NAME: usize = 64;

/// Why a device name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Empty, too long, or with hidden or control characters.
    #[error(
        "a device name must be 1 to {MAX_DEVICE_NAME} bytes of visible characters, without control, bidi or zero-width characters"
    )]
    Malformed,
    /// Looks like a device id (16 hex digits).
    #[error("a device name must not look like a device id")]
    LooksLikeId,
    /// Looks like another device's id or name.
    #[error("a device name must not look like another device's name or id ({0})")]
    LooksLike(String),
}

/// The comparison key of a name: lower case, without spaces and punctuation, with common
/// look-alikes (fullwidth forms, Cyrillic and Greek letters shaped like Latin ones,
/// 0/o and 1/l/i) folded together.
pub fn name_skeleton(name: &str) -> String {
    name.chars()
        .map(fold_fullwidth)
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_alphanumeric())
        .map(fold_lookalike)
        .collect()
}

fn fold_fullwidth(c: char) -> char {
    let u = u32::from(c);
    if (0xFF01..=0xFF5E).contains(&u) {
        char::from_u32(u - 0xFEE0).unwrap_or(c)
    } else {
        c
    }
}

fn fold_lookalike(c: char) -> char {
    match c {
        '0' | 'о' | 'ο' | 'օ' => 'o',
        '1' | 'i' | 'і' | 'ı' | 'ӏ' | 'ι' | 'l' => 'l',
        'а' | 'α' => 'a',
        'е' | 'ε' => 'e',
        'р' | 'ρ' => 'p',
        'с' | 'ϲ' => 'c',
        'у' | 'γ' => 'y',
        'х' | 'χ' => 'x',
        'ѕ' | '5' => 's',
        'ј' => 'j',
        'ԁ' => 'd',
        'һ' => 'h',
        'к' | 'κ' => 'k',
        'м' => 'm',
        'т' | 'τ' => 't',
        'в' | 'β' => 'b',
        'н' | 'η' => 'n',
        'ν' => 'v',
        'ω' => 'w',
        other => other,
    }
}

/// Checks a device name against the rules and the names and ids already in use
/// (`taken`): refused if malformed, shaped like an id, or alike another.
pub fn check_device_name<'a>(
    name: &str,
    taken: impl IntoIterator<Item = &'a str>,
) -> Result<(), NameError> {
    if name.is_empty()
        || name.len() > MAX_DEVICE_NAME
        || name.trim() != name
        || name.chars().any(is_hidden_or_control)
    {
        return Err(NameError::Malformed);
    }
    let compact: String = name.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.len() == 16 && compact.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(NameError::LooksLikeId);
    }
    let mine = name_skeleton(name);
    if mine.is_empty() {
        return Err(NameError::Malformed);
    }
    for other in taken {
        if name_skeleton(other) == mine {
            return Err(NameError::LooksLike(escape(other).into_owned()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_steering_and_invisible_characters_are_escaped() {
        for evil in [
            "\u{1b}]0;owned\u{7}",
            "\u{1b}[2J",
            "\u{9b}31m",
            "a\nfake row",
            "\u{202e}gnp.exe",
            "ad\u{200b}min",
            "\u{2066}x\u{2069}",
            "\u{e0041}",
        ] {
            let out = escape(evil);
            assert!(!out.chars().any(is_hidden_or_control), "{out:?}");
            assert!(out.contains("\\u{"), "{out:?}");
        }
        assert!(matches!(escape("kitchen phone é"), Cow::Borrowed(_)));
    }

    #[test]
    fn cells_are_cut_to_their_width() {
        assert_eq!(cell("abcdef", 4), "abc…");
        assert_eq!(cell("abc", 4), "abc");
        assert_eq!(cell("a\u{1b}", 20), "a\\u{001b}");
    }

    #[test]
    fn names_that_imitate_ids_or_other_names_are_refused() {
        let taken = ["0123456789abcdef", "Anna's phone"];
        assert_eq!(
            check_device_name("0123456789abcdef", taken),
            Err(NameError::LooksLikeId)
        );
        assert_eq!(
            check_device_name("fedcba9876543210", taken),
            Err(NameError::LooksLikeId)
        );
        for alike in [
            "anna's phone",
            "Аnna's phоne",
            "Anna s phone",
            "ＡＮＮＡ'S PHONE",
        ] {
            assert!(
                matches!(
                    check_device_name(alike, taken),
                    Err(NameError::LooksLike(_))
                ),
                "{alike}"
            );
        }
        for bad in ["", " x", "a\u{200b}b", "x\u{202e}", &"n".repeat(65)] {
            assert_eq!(
                check_device_name(bad, taken),
                Err(NameError::Malformed),
                "{bad:?}"
            );
        }
        assert!(check_device_name("Bob's tablet", taken).is_ok());
    }
}
