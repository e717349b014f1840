//! Package filenames that come from outside (uploads, peer records): normalized to
//! Unicode NFC, so the NFC and NFD spellings of `Café.pkg` (macOS hands out NFD) are
//! one package, and refused when they hold invisible or direction-changing characters
//! (bidi controls, zero-width characters, the BOM, line and paragraph separators).
//!
//! Compatibility rule for databases written before this rule: nothing is rewritten;
//! a lookup by name tries the NFC form of the name asked for, then the name exactly as
//! asked ([`lookup_forms`]), so a stored NFD or otherwise non-NFC name is still served,
//! and lookups never refuse the characters new names may not have.

use unicode_normalization::UnicodeNormalization;

/// Characters a filename may not have: they hide or reorder what a person reads.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}' // zero-width space/non-joiner/joiner, LRM, RLM
        | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
        | '\u{2066}'..='\u{2069}' // bidi isolates
        | '\u{2060}' // word joiner
        | '\u{FEFF}' // BOM / zero-width no-break space
        | '\u{2028}' | '\u{2029}' // line and paragraph separators
    )
}

/// The NFC form of a filename a client or peer sent, or why it is refused.
pub fn accept(name: &str) -> Result<String, String> {
    if let Some(c) = name.chars().find(|c| is_invisible(*c)) {
        return Err(format!(
            "the filename may not contain invisible or bidi control characters (U+{:04X}): {name:?}",
            c as u32
        ));
    }
    let nfc: String = name.nfc().collect();
    match crate::model::filename_problem(&nfc) {
        Some(problem) => Err(format!("{problem}: {name:?}")),
        None => Ok(nfc),
    }
}

/// The spellings a lookup by `name` tries, in order: its NFC form, then `name` as is.
pub fn lookup_forms(name: &str) -> Vec<String> {
    let nfc: String = name.nfc().collect();
    if nfc == name {
        vec![nfc]
    } else {
        vec![nfc, name.to_string()]
    }
}

/// The filename a multipart part was sent with, read from its raw
/// `Content-Disposition` so that a quoted name with `\"` or `\\` escapes (as curl and
/// reqwest send `a"b.pkg`) is the name sent, not cut at the quote. `parsed` is what the
/// multipart parser made of it, used when the header has no plain `filename="..."`
/// (for example only `filename*=`). Refuses an unterminated quoted name.
pub fn multipart_filename(
    content_disposition: Option<&str>,
    parsed: Option<&str>,
) -> Result<Option<String>, String> {
    let Some(cd) = content_disposition else {
        return Ok(parsed.map(str::to_string));
    };
    let lower = cd.to_ascii_lowercase();
    let mut search = 0;
    while let Some(i) = lower[search..].find("filename=") {
        let at = search + i;
        search = at + 9;
        let before = lower[..at].trim_end();
        if !(before.ends_with(';') || before.is_empty()) {
            continue; // part of another parameter's name or value
        }
        let rest = &cd[at + 9..];
        let Some(quoted) = rest.strip_prefix('"') else {
            return Ok(parsed.map(str::to_string)); // a token, which has no quotes
        };
        let mut out = String::new();
        let mut chars = quoted.chars();
        while let Some(c) = chars.next() {
            match c {
                // Only `\"` and `\\` are escapes (as curl sends them); any other
                // backslash is kept, so `a\b` stays a name with a backslash.
                '\\' => match chars.clone().next() {
                    Some(e @ ('"' | '\\')) => {
                        chars.next();
                        out.push(e);
                    }
                    _ => out.push('\\'),
                },
                '"' => return Ok(Some(out)),
                c => out.push(c),
            }
        }
        return Err(format!(
            "the filename in the part's Content-Disposition has no closing quote: {cd:?}"
        ));
    }
    Ok(parsed.map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nfd_becomes_nfc_and_invisibles_are_refused() {
        let nfd = "Cafe\u{301}.pkg";
        assert_eq!(accept(nfd).unwrap(), "Caf\u{e9}.pkg");
        assert_eq!(
            lookup_forms(nfd),
            vec!["Caf\u{e9}.pkg".to_string(), nfd.to_string()]
        );
        assert_eq!(lookup_forms("a.pkg"), vec!["a.pkg".to_string()]);
        for c in [
            '\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{200B}',
            '\u{200D}', '\u{2060}', '\u{FEFF}', '\u{2028}', '\u{2029}',
        ] {
            assert!(accept(&format!("a{c}b.pkg")).is_err(), "{:04X}", c as u32);
        }
        assert!(accept("../x").is_err());
        let cd = |h: &str| multipart_filename(Some(h), Some("a"));
        assert_eq!(
            cd(r#"form-data; name="file"; filename="a\"b.pkg""#)
                .unwrap()
                .unwrap(),
            "a\"b.pkg"
        );
        assert_eq!(
            cd(r#"form-data; name="file"; filename="a\\b.pkg""#)
                .unwrap()
                .unwrap(),
            "a\\b.pkg"
        );
        assert_eq!(
            cd(r#"form-data; filename="x.pkg"; name="file""#)
                .unwrap()
                .unwrap(),
            "x.pkg"
        );
        assert_eq!(
            cd(r#"form-data; name="myfilename=1"; filename="y""#)
                .unwrap()
                .unwrap(),
            "y"
        );
        assert!(cd(r#"form-data; name="file"; filename="open"#).is_err());
        assert_eq!(
            cd(r#"form-data; name="file"; filename="a\b""#)
                .unwrap()
                .unwrap(),
            "a\\b"
        );
        assert_eq!(cd("form-data; name=file").unwrap().as_deref(), Some("a"));
        assert_eq!(accept("Ünïcødé 1.pkg").unwrap(), "Ünïcødé 1.pkg");
    }
}
