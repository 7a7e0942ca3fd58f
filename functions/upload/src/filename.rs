//! The client's file name, cleaned for display.

/// The longest file name kept for display.
const MAX_FILENAME_CHARS: usize = 255;

/// Keeps the last path segment, drops control characters and Unicode format characters (bidi
/// overrides and isolates, zero-width characters, the BOM, soft hyphen: invisible characters that
/// make `invoice\u{202E}fdp.exe` display as `invoiceexe.pdf`), trims, and bounds the length.
pub fn clean_filename(raw: &str) -> Option<String> {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !is_format_char(*c))
        .take(MAX_FILENAME_CHARS)
        .collect();
    let cleaned = cleaned.trim();
    (!cleaned.is_empty() && cleaned != "." && cleaned != "..").then(|| cleaned.to_owned())
}

/// Unicode's format characters (general category Cf) that can occur in a file name: invisible,
/// and some reorder or hide what is displayed around them.
fn is_format_char(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{FEFF}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{E0001}' | '\u{E0020}'..='\u{E007F}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_overrides_and_invisible_characters_are_stripped_from_file_names() {
        assert_eq!(
            clean_filename("invoice\u{202E}fdp.exe").as_deref(),
            Some("invoicefdp.exe")
        );
        assert_eq!(
            clean_filename("\u{2066}a\u{200B}b\u{FEFF}.jpg\u{2069}").as_deref(),
            Some("ab.jpg")
        );
        assert_eq!(
            clean_filename("\u{200E}\u{200F}"),
            None,
            "nothing visible left"
        );
        assert_eq!(
            clean_filename("café 北京.jpg").as_deref(),
            Some("café 北京.jpg")
        );
    }
}
