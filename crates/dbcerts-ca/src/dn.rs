//! Distinguished-name rules for managed X.509 users.
//!
//! A managed certificate's subject is exactly one RDN, `CN=<username>`, with the username stored
//! verbatim as a UTF8String. Because the subject is built as DER from a single attribute, no
//! username can ever add RDNs to the certificate. The string form matters too: MongoDB maps a
//! client certificate to the `$external` user named by the subject's RFC 2253 string, so a
//! username containing DN metacharacters would need escaping that operators get wrong. dbcerts
//! therefore refuses such usernames for MANAGED users (Atlas answers
//! `ATLAS_MANAGED_X509_NAME_INVALID`, "must take the form CN=<username> with no additional
//! OIDs"), and escapes per RFC 4514 anyway when it renders a subject string.
//!
//! The name must also not pass for another one when a person reads it: characters that render
//! as nothing (`alice` + U+E0100 prints as `CN=alice`), spaces other than U+0020, line
//! separators, control, format, private-use and unassigned code points are refused by their
//! Unicode properties ([`refused_character`]), and so are names not in Normalization Form C.

/// The longest username Atlas accepts (`CloudDatabaseUser.username.maxLength`). Longer than
/// RFC 5280's `ub-common-name` (64): see docs/COMPATIBILITY.md ("MANAGED usernames") for why
/// dbcerts keeps Atlas's figure.
pub const MAX_USERNAME_CHARS: usize = 1024;

/// Why a username cannot be a managed X.509 common name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManagedNameProblem {
    Empty,
    TooLong,
    /// A character no name may hold, and which kind it is.
    Character(char, RefusedChar),
    Metacharacter(char),
    /// The name is not in Unicode Normalization Form C.
    NotNfc,
    LeadingOrTrailingSpace,
    LeadingHash,
}

/// The kinds of character a managed username may not hold. Each is a Unicode property of the
/// character (ICU4X's compiled data: `icu_properties`, `icu_normalizer`), never a hand-made list
/// of code points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedChar {
    /// General category Cc.
    Control,
    /// General category Cf: bidirectional controls, zero-width joiners, tags, ...
    Format,
    /// General categories Zl and Zp (U+2028, U+2029).
    LineOrParagraphSeparator,
    /// General category Co: no meaning the operator's terminal and the client's would agree on.
    PrivateUse,
    /// General category Cn, noncharacters included: what a later Unicode version assigns them
    /// (a combining mark, a format character) would change how the name shows and normalizes.
    Unassigned,
    /// General category Cs. Unreachable for a Rust `char`; named so that the rule is complete.
    Surrogate,
    /// `Default_Ignorable_Code_Point`: variation selectors, fillers, the combining grapheme
    /// joiner: characters that render as nothing.
    DefaultIgnorable,
    /// `White_Space` other than U+0020: no-break, ideographic, en/em spaces that look like a
    /// plain space but are another name.
    SpaceOtherThanU0020,
    /// Script Braille: a tactile notation, not a writing system names are written in; its
    /// U+2800 is a pattern with no dots, which renders blank.
    Braille,
}

impl std::fmt::Display for RefusedChar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Control => "a control character",
            Self::Format => "a format character",
            Self::LineOrParagraphSeparator => "a line or paragraph separator",
            Self::PrivateUse => "a private-use character",
            Self::Unassigned => "an unassigned code point",
            Self::Surrogate => "a surrogate",
            Self::DefaultIgnorable => "a default-ignorable (invisible) character",
            Self::SpaceOtherThanU0020 => "a space other than U+0020",
            Self::Braille => "a Braille pattern",
        })
    }
}

impl std::fmt::Display for ManagedNameProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => f.write_str("it is empty"),
            Self::TooLong => write!(f, "it is longer than {MAX_USERNAME_CHARS} characters"),
            Self::Character(c, kind) => write!(f, "it contains U+{:04X}, {kind}", *c as u32),
            Self::Metacharacter(c) => write!(f, "it contains the DN metacharacter {c:?}"),
            Self::NotNfc => f.write_str("it is not in Unicode Normalization Form C"),
            Self::LeadingOrTrailingSpace => f.write_str("it starts or ends with white space"),
            Self::LeadingHash => f.write_str("it starts with '#'"),
        }
    }
}

/// Checks that `username` can be the sole common name of a managed certificate, round-trips
/// unchanged through RFC 2253/4514 string form, and cannot pass for another name: no character
/// that renders as nothing or as a plain space, no control or format character, nothing whose
/// meaning a later Unicode version could change, and one encoding only (NFC), so that `café`
/// composed and decomposed are not two users.
pub fn check_managed_username(username: &str) -> Result<(), ManagedNameProblem> {
    if username.is_empty() {
        return Err(ManagedNameProblem::Empty);
    }
    if username.chars().count() > MAX_USERNAME_CHARS {
        return Err(ManagedNameProblem::TooLong);
    }
    if let Some(c) = username
        .chars()
        .find(|c| matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '='))
    {
        return Err(ManagedNameProblem::Metacharacter(c));
    }
    if let Some((c, kind)) = username
        .chars()
        .find_map(|c| refused_character(c).map(|kind| (c, kind)))
    {
        return Err(ManagedNameProblem::Character(c, kind));
    }
    if !icu_normalizer::ComposingNormalizerBorrowed::new_nfc().is_normalized(username) {
        return Err(ManagedNameProblem::NotNfc);
    }
    if username.starts_with(char::is_whitespace) || username.ends_with(char::is_whitespace) {
        return Err(ManagedNameProblem::LeadingOrTrailingSpace);
    }
    if username.starts_with('#') {
        return Err(ManagedNameProblem::LeadingHash);
    }
    Ok(())
}

/// Whether a managed username may hold `c`, by `c`'s Unicode properties alone; `None` if it may.
pub fn refused_character(c: char) -> Option<RefusedChar> {
    use icu_properties::props::{
        DefaultIgnorableCodePoint, GeneralCategory as Gc, Script, WhiteSpace,
    };
    use icu_properties::{CodePointMapData, CodePointSetData};

    let kind = match CodePointMapData::<Gc>::new().get(c) {
        Gc::Control => Some(RefusedChar::Control),
        Gc::Format => Some(RefusedChar::Format),
        Gc::LineSeparator | Gc::ParagraphSeparator => Some(RefusedChar::LineOrParagraphSeparator),
        Gc::PrivateUse => Some(RefusedChar::PrivateUse),
        Gc::Unassigned => Some(RefusedChar::Unassigned),
        Gc::Surrogate => Some(RefusedChar::Surrogate),
        _ => None,
    };
    kind.or_else(|| {
        if CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c) {
            Some(RefusedChar::DefaultIgnorable)
        } else if c != ' ' && CodePointSetData::new::<WhiteSpace>().contains(c) {
            Some(RefusedChar::SpaceOtherThanU0020)
        } else if CodePointMapData::<Script>::new().get(c) == Script::Braille {
            Some(RefusedChar::Braille)
        } else {
            None
        }
    })
}

/// Escapes an attribute value per RFC 4514 section 2.4.
pub fn escape_attribute_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            _ => out.push(c),
        }
    }
    out
}

/// The RFC 2253 subject string of a managed certificate for `username`.
pub fn managed_subject(username: &str) -> String {
    format!("CN={}", escape_attribute_value(username))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_and_unicode_names() {
        for ok in [
            "user389",
            "alice@example.com",
            "Zoë Ångström",
            "用户",
            "a-b_c.d",
            "caf\u{E9}",
            "山田 太郎",
            "Łódź",
            "émoji🙂",
            "o'brien",
            "a/b",
        ] {
            assert_eq!(check_managed_username(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_names_that_could_change_identity() {
        for bad in [
            "alice,OU=admin",
            "a+CN=b",
            "\"quoted\"",
            "#lead",
            "trailing ",
            " leading",
            "back\\slash",
            "semi;colon",
            "CN=alice",
            "nul\0byte",
            "new\nline",
            "",
            "\u{202E}alice",
            "ali\u{200B}ce",
            "\u{FEFF}alice",
            "alice\u{2066}",
        ] {
            assert!(
                check_managed_username(bad).is_err(),
                "{bad:?} must be refused"
            );
        }
        assert_eq!(
            check_managed_username(&"x".repeat(1025)),
            Err(ManagedNameProblem::TooLong)
        );
        assert_eq!(check_managed_username(&"é".repeat(1024)), Ok(()));
    }

    /// The hostile review's findings (issue 15, item 3): each one, anywhere in a name.
    #[test]
    fn refuses_the_reviews_invisible_and_separator_characters() {
        let expected = [
            ('\u{034F}', RefusedChar::DefaultIgnorable), // combining grapheme joiner
            ('\u{E0100}', RefusedChar::DefaultIgnorable), // variation selector-17
            ('\u{17B4}', RefusedChar::DefaultIgnorable), // Khmer vowel inherent AQ
            ('\u{180B}', RefusedChar::DefaultIgnorable), // Mongolian free variation selector
            ('\u{1D173}', RefusedChar::Format),          // musical symbol begin beam
            ('\u{2800}', RefusedChar::Braille),          // Braille pattern blank
            ('\u{2028}', RefusedChar::LineOrParagraphSeparator),
            ('\u{2029}', RefusedChar::LineOrParagraphSeparator),
        ];
        for (c, kind) in expected {
            assert_eq!(refused_character(c), Some(kind), "U+{:04X}", c as u32);
            for name in [
                format!("alice{c}"),
                format!("{c}alice"),
                format!("al{c}ice"),
            ] {
                assert_eq!(
                    check_managed_username(&name),
                    Err(ManagedNameProblem::Character(c, kind)),
                    "{name:?}"
                );
            }
        }
    }

    #[test]
    fn one_name_one_encoding() {
        assert_eq!(check_managed_username("caf\u{E9}"), Ok(()));
        assert_eq!(
            check_managed_username("cafe\u{301}"),
            Err(ManagedNameProblem::NotNfc)
        );
        // A singleton decomposition: U+212B ANGSTROM SIGN is U+00C5 in every normal form.
        assert_eq!(
            check_managed_username("\u{212B}ngstr\u{F6}m"),
            Err(ManagedNameProblem::NotNfc)
        );
        assert_eq!(check_managed_username("\u{C5}ngstr\u{F6}m"), Ok(()));
    }

    /// What the previous, hand-made list of invisible characters refused stays refused now that
    /// the rule is made of Unicode properties.
    #[test]
    fn the_former_hand_made_list_is_still_refused() {
        let ranges = [
            '\u{00AD}'..='\u{00AD}',
            '\u{061C}'..='\u{061C}',
            '\u{115F}'..='\u{1160}',
            '\u{180E}'..='\u{180E}',
            '\u{200B}'..='\u{200F}',
            '\u{202A}'..='\u{202E}',
            '\u{2060}'..='\u{206F}',
            '\u{3164}'..='\u{3164}',
            '\u{FE00}'..='\u{FE0F}',
            '\u{FEFF}'..='\u{FEFF}',
            '\u{FFA0}'..='\u{FFA0}',
            '\u{FFF9}'..='\u{FFFB}',
            '\u{E0000}'..='\u{E007F}',
        ];
        for c in ranges.into_iter().flatten() {
            assert!(refused_character(c).is_some(), "U+{:04X}", c as u32);
        }
    }

    /// Every `char`, checked against independent implementations of the same Unicode version:
    /// unicode-rs's General_Category tables, the standard library's Cc and White_Space, and
    /// unicode-rs's NFC. (Default_Ignorable_Code_Point has no second Rust implementation; the
    /// black-box test checks it against Python's `regex`.)
    #[test]
    fn every_char_against_independent_tables() {
        use unicode_properties::{GeneralCategory as Gc, UnicodeGeneralCategory};
        assert_eq!(
            unicode_properties::UNICODE_VERSION,
            (18, 0, 0),
            "the oracle's Unicode version must be the ICU data's"
        );
        assert_eq!(unicode_normalization::UNICODE_VERSION, (18, 0, 0));
        let mut refused = 0usize;
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let by_category = match c.general_category() {
                Gc::Control => Some(RefusedChar::Control),
                Gc::Format => Some(RefusedChar::Format),
                Gc::LineSeparator | Gc::ParagraphSeparator => {
                    Some(RefusedChar::LineOrParagraphSeparator)
                }
                Gc::PrivateUse => Some(RefusedChar::PrivateUse),
                Gc::Unassigned => Some(RefusedChar::Unassigned),
                Gc::Surrogate => Some(RefusedChar::Surrogate),
                _ => None,
            };
            let got = refused_character(c);
            let hex = c as u32;
            if by_category.is_some() {
                assert_eq!(got, by_category, "U+{hex:04X}: general category");
            } else {
                assert!(
                    !matches!(
                        got,
                        Some(
                            RefusedChar::Control
                                | RefusedChar::Format
                                | RefusedChar::LineOrParagraphSeparator
                                | RefusedChar::PrivateUse
                                | RefusedChar::Unassigned
                                | RefusedChar::Surrogate
                        )
                    ),
                    "U+{hex:04X}: {got:?} but category {:?}",
                    c.general_category()
                );
            }
            assert_eq!(
                got == Some(RefusedChar::Control),
                c.is_control(),
                "U+{hex:04X}: Cc"
            );
            if c.is_whitespace() && c != ' ' {
                assert!(got.is_some(), "U+{hex:04X}: White_Space");
            }
            // The whole rule, on a name holding the char between two letters.
            let name = format!("x{c}y");
            let result = check_managed_username(&name);
            if let Some(kind) = got {
                refused += 1;
                assert_eq!(
                    result,
                    Err(ManagedNameProblem::Character(c, kind)),
                    "U+{hex:04X}"
                );
            } else if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=') {
                assert_eq!(result, Err(ManagedNameProblem::Metacharacter(c)));
            } else if unicode_normalization::is_nfc(&name) {
                assert_eq!(result, Ok(()), "U+{hex:04X}");
            } else {
                assert_eq!(result, Err(ManagedNameProblem::NotNfc), "U+{hex:04X}");
            }
        }
        // Most of the code space is unassigned or private use.
        assert!(refused > 900_000, "{refused}");
    }

    #[test]
    fn escapes_per_rfc4514() {
        assert_eq!(escape_attribute_value("alice,OU=admin"), "alice\\,OU=admin");
        assert_eq!(escape_attribute_value("#lead"), "\\#lead");
        assert_eq!(escape_attribute_value(" a b "), "\\ a b\\ ");
        assert_eq!(escape_attribute_value("a+b\\c\"d"), "a\\+b\\\\c\\\"d");
        assert_eq!(managed_subject("user389"), "CN=user389");
    }
}
