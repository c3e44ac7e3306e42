//! Text from another party, made safe to show to a person: the one rule every window and terminal uses.
//!
//! Much of what Tether shows was written by someone else: a chat line, the reason the user gave, a
//! record's notes, a technician's name and org, the names in an inventory (package names, mount
//! points, host and interface names — anything a user or a package can set). Any of it may carry
//! characters that do not show as themselves:
//! - C0 and C1 controls (category `Cc`), which drive a terminal (`ESC [2J`) or break a line;
//! - format characters (`Cf`): bidirectional overrides and isolates that make `exe.txt` read as
//!   `txt.exe`, the Arabic letter mark U+061C, zero-width spaces and joiners, the soft hyphen, the
//!   Mongolian vowel separator U+180E, tag characters from U+E0001, ...;
//! - the line and paragraph separators U+2028 (`Zl`) and U+2029 (`Zp`), which start a new line in a
//!   window, so one chat line can fake a second speaker.
//!
//! [`display_safe`] (one line) and [`display_safe_multiline`] (keeps `\n` and `\t`) replace every
//! such character, one for one, so lengths measured before still hold:
//! - a C0 control becomes its visible picture (U+2400 + code, `␛` for escape), DEL becomes `␡`, a tab
//!   becomes a space (on one line);
//! - every other character of `Cc`, `Cf`, `Zl` or `Zp`, and every bidi control, becomes `�`.
//!
//! Both functions are idempotent (pictures and `�` are ordinary symbols) and return the input
//! borrowed when nothing needed replacing, so callers may apply them again at every hop.
//!
//! The category table is the `unicode-properties` crate (Unicode 18.0.0, see
//! [`unicode_properties::UNICODE_VERSION`]): no dependencies, no I/O, kept current by the unicode-rs
//! project, and already built into the windows through egui. A character that a later Unicode version
//! moves into one of these categories is caught when that crate is updated.
//!
//! One known cost: U+200D ZERO WIDTH JOINER is `Cf`, so an emoji sequence such as 👩‍💻 shows as its
//! parts with `�` between them. egui does not draw joined emoji anyway, and a joiner is also a way to
//! make two different names look alike, so the rule has no exceptions.

use std::borrow::Cow;

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// What a character that may not be shown becomes, unless it is a C0 control (which has a picture).
pub const REPLACEMENT: char = '\u{FFFD}';

/// True for every character that must not reach a screen as itself: categories `Cc`, `Cf`, `Zl` and
/// `Zp`, and the bidi controls (all `Cf` today; listed too so that no table update can let them out).
pub fn is_hidden(c: char) -> bool {
    // Printable ASCII is most of what is shown; skip the table for it.
    if (' '..='~').contains(&c) {
        return false;
    }
    is_bidi_control(c)
        || matches!(
            c.general_category(),
            GeneralCategory::Control
                | GeneralCategory::Format
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator
        )
}

/// The characters with the Unicode `Bidi_Control` property: they change the direction text is laid out
/// in, so what is shown can read differently from what it is.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// `s` made safe to show on one line: see the [module docs](self) for the rule. A line break becomes
/// `␊`, so text cannot start a line that looks like someone else's.
pub fn display_safe(s: &str) -> Cow<'_, str> {
    neutralise(s, false)
}

/// Like [`display_safe`], but `\n` and `\t` are kept, for multi-line text such as a record's notes.
/// Every other control (`\r` too) is replaced.
pub fn display_safe_multiline(s: &str) -> Cow<'_, str> {
    neutralise(s, true)
}

fn neutralise(s: &str, multiline: bool) -> Cow<'_, str> {
    match s
        .char_indices()
        .find(|&(_, c)| replace(c, multiline).is_some())
    {
        None => Cow::Borrowed(s),
        Some((first, _)) => {
            let mut out = String::with_capacity(s.len());
            out.push_str(&s[..first]);
            out.extend(
                s[first..]
                    .chars()
                    .map(|c| replace(c, multiline).unwrap_or(c)),
            );
            Cow::Owned(out)
        }
    }
}

/// What `c` is shown as, or `None` if it shows as itself.
fn replace(c: char, multiline: bool) -> Option<char> {
    match c {
        '\n' | '\t' if multiline => None,
        '\t' => Some(' '),
        // U+2400..U+241F are the control pictures, in code order.
        '\u{0}'..='\u{1f}' => Some(char::from_u32(0x2400 + c as u32).unwrap_or(REPLACEMENT)),
        '\u{7f}' => Some('\u{2421}'),
        c if is_hidden(c) => Some(REPLACEMENT),
        _ => None,
    }
}

/// What the tests of every display path check against: a second, independently generated category
/// table (`unicode-general-category`), the standard library's idea of a control, and the bidi list,
/// besides the table the product uses.
#[cfg(test)]
pub(crate) mod oracle {
    use unicode_general_category::{GeneralCategory as G, get_general_category};

    /// Every character that must not survive on a screen, by any of the sources.
    pub(crate) fn must_hide(c: char) -> bool {
        c.is_control()
            || super::is_bidi_control(c)
            || super::is_hidden(c)
            || matches!(
                get_general_category(c),
                G::Control | G::Format | G::LineSeparator | G::ParagraphSeparator
            )
    }

    /// Every Unicode scalar value.
    pub(crate) fn all_chars() -> impl Iterator<Item = char> {
        (0..=0x10FFFF_u32).filter_map(char::from_u32)
    }

    /// The code points named in issue 13, each a way text has been disguised, with a name for failures.
    pub(crate) const NAMED: &[(char, &str)] = &[
        ('\u{0000}', "NUL"),
        ('\u{0007}', "BEL"),
        ('\u{000A}', "LINE FEED"),
        ('\u{000D}', "CARRIAGE RETURN"),
        ('\u{001B}', "ESCAPE"),
        ('\u{007F}', "DELETE"),
        ('\u{0085}', "NEXT LINE"),
        ('\u{009B}', "CONTROL SEQUENCE INTRODUCER"),
        ('\u{00AD}', "SOFT HYPHEN"),
        ('\u{061C}', "ARABIC LETTER MARK"),
        ('\u{180E}', "MONGOLIAN VOWEL SEPARATOR"),
        ('\u{200B}', "ZERO WIDTH SPACE"),
        ('\u{200D}', "ZERO WIDTH JOINER"),
        ('\u{200E}', "LEFT-TO-RIGHT MARK"),
        ('\u{200F}', "RIGHT-TO-LEFT MARK"),
        ('\u{2028}', "LINE SEPARATOR"),
        ('\u{2029}', "PARAGRAPH SEPARATOR"),
        ('\u{202A}', "LEFT-TO-RIGHT EMBEDDING"),
        ('\u{202B}', "RIGHT-TO-LEFT EMBEDDING"),
        ('\u{202C}', "POP DIRECTIONAL FORMATTING"),
        ('\u{202D}', "LEFT-TO-RIGHT OVERRIDE"),
        ('\u{202E}', "RIGHT-TO-LEFT OVERRIDE"),
        ('\u{2060}', "WORD JOINER"),
        ('\u{2066}', "LEFT-TO-RIGHT ISOLATE"),
        ('\u{2067}', "RIGHT-TO-LEFT ISOLATE"),
        ('\u{2068}', "FIRST STRONG ISOLATE"),
        ('\u{2069}', "POP DIRECTIONAL ISOLATE"),
        ('\u{FEFF}', "ZERO WIDTH NO-BREAK SPACE (BOM)"),
        ('\u{FFF9}', "INTERLINEAR ANNOTATION ANCHOR"),
        ('\u{E0001}', "LANGUAGE TAG"),
        ('\u{E0041}', "TAG LATIN CAPITAL LETTER A"),
    ];
}

#[cfg(test)]
mod tests {
    use super::oracle::{NAMED, all_chars, must_hide};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_cc_cf_zl_zp_and_bidi_code_point_is_replaced() {
        let mut hidden = 0;
        for c in all_chars() {
            let s = format!("a{c}b");
            for (out, mode) in [
                (display_safe(&s), "one line"),
                (display_safe_multiline(&s), "multiline"),
            ] {
                if must_hide(c) && !(mode == "multiline" && (c == '\n' || c == '\t')) {
                    assert!(
                        !out.contains(c),
                        "U+{:04X} survived ({mode}): {out:?}",
                        c as u32
                    );
                    assert_eq!(out.chars().count(), 3, "U+{:04X} ({mode})", c as u32);
                    assert!(
                        out.starts_with('a') && out.ends_with('b'),
                        "U+{:04X}",
                        c as u32
                    );
                } else {
                    // Everything else is shown as itself, and nothing is copied for it.
                    assert!(
                        matches!(out, Cow::Borrowed(_)),
                        "U+{:04X} was changed ({mode}): {out:?}",
                        c as u32
                    );
                }
            }
            hidden += usize::from(must_hide(c));
        }
        // Unicode 18 has 65 Cc, 170-odd Cf and one each of Zl and Zp; a broken table finds far fewer.
        assert!((230..400).contains(&hidden), "{hidden} hidden code points");
    }

    #[test]
    fn the_named_disguises_are_replaced() {
        for &(c, name) in NAMED {
            assert!(is_hidden(c), "{name} is not hidden");
            let s = format!("x{c}y");
            let out = display_safe(&s);
            assert!(!out.contains(c), "{name} survived: {out:?}");
            if c != '\n' {
                assert!(
                    !display_safe_multiline(&s).contains(c),
                    "{name} (multiline)"
                );
            }
        }
    }

    #[test]
    fn c0_controls_become_their_pictures() {
        assert_eq!(
            display_safe("red\u{1b}[31m\u{7}\tx\u{7f}\u{0}\r\n"),
            "red\u{241b}[31m\u{2407} x\u{2421}\u{2400}\u{240d}\u{240a}"
        );
        assert_eq!(
            display_safe("\u{202e}evil\u{9b}\u{2028}\u{61c}"),
            "\u{fffd}evil\u{fffd}\u{fffd}\u{fffd}"
        );
        assert_eq!(
            display_safe_multiline("a\n\tb\r\u{2029}c"),
            "a\n\tb\u{240d}\u{fffd}c"
        );
    }

    #[test]
    fn ordinary_text_is_borrowed_and_untouched() {
        let s = "Grüße, 東京 — مرحبا 🙂 ✓";
        assert!(matches!(display_safe(s), Cow::Borrowed(x) if x == s));
        assert!(matches!(display_safe_multiline("a\nb"), Cow::Borrowed(_)));
    }

    proptest! {
        #[test]
        fn output_is_safe_same_length_and_idempotent(s in any::<String>()) {
            for (out, multiline) in [(display_safe(&s), false), (display_safe_multiline(&s), true)] {
                prop_assert!(!out.chars().any(|c| must_hide(c) && !(multiline && (c == '\n' || c == '\t'))));
                prop_assert_eq!(out.chars().count(), s.chars().count());
                let again = neutralise(&out, multiline);
                prop_assert_eq!(again.as_ref(), out.as_ref());
            }
        }
    }
}
