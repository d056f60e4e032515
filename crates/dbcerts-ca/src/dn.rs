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

/// The longest username Atlas accepts (`CloudDatabaseUser.username.maxLength`).
pub const MAX_USERNAME_CHARS: usize = 1024;

/// Why a username cannot be a managed X.509 common name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManagedNameProblem {
    Empty,
    TooLong,
    ControlCharacter,
    InvisibleCharacter(char),
    Metacharacter(char),
    LeadingOrTrailingSpace,
    LeadingHash,
}

impl std::fmt::Display for ManagedNameProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => f.write_str("it is empty"),
            Self::TooLong => write!(f, "it is longer than {MAX_USERNAME_CHARS} characters"),
            Self::ControlCharacter => f.write_str("it contains a control character"),
            Self::InvisibleCharacter(c) => {
                write!(f, "it contains the invisible character U+{:04X}", *c as u32)
            }
            Self::Metacharacter(c) => write!(f, "it contains the DN metacharacter {c:?}"),
            Self::LeadingOrTrailingSpace => f.write_str("it starts or ends with white space"),
            Self::LeadingHash => f.write_str("it starts with '#'"),
        }
    }
}

/// Checks that `username` can be the sole common name of a managed certificate and round-trips
/// unchanged through RFC 2253/4514 string form.
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
    if username.chars().any(char::is_control) {
        return Err(ManagedNameProblem::ControlCharacter);
    }
    if let Some(c) = username.chars().find(|&c| is_invisible(c)) {
        return Err(ManagedNameProblem::InvisibleCharacter(c));
    }
    if username.starts_with(char::is_whitespace) || username.ends_with(char::is_whitespace) {
        return Err(ManagedNameProblem::LeadingOrTrailingSpace);
    }
    if username.starts_with('#') {
        return Err(ManagedNameProblem::LeadingHash);
    }
    Ok(())
}

/// Unicode format characters that change how a name is shown without being seen themselves:
/// bidirectional overrides and isolates (`\u{202E}alice` displays as `ecila`), zero-width
/// spaces and joiners, the soft hyphen and the byte-order mark. In a certificate subject they
/// would make two different identities look alike to the operator who grants them roles.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}'
    )
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

    #[test]
    fn escapes_per_rfc4514() {
        assert_eq!(escape_attribute_value("alice,OU=admin"), "alice\\,OU=admin");
        assert_eq!(escape_attribute_value("#lead"), "\\#lead");
        assert_eq!(escape_attribute_value(" a b "), "\\ a b\\ ");
        assert_eq!(escape_attribute_value("a+b\\c\"d"), "a\\+b\\\\c\\\"d");
        assert_eq!(managed_subject("user389"), "CN=user389");
    }
}
