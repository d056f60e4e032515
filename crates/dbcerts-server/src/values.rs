//! Request-body attribute values that more than one check depends on, parsed once into types
//! handlers trust: [`MonthsUntilExpiration`] (a certificate's lifetime) and [`X509Type`] (how a
//! database user authenticates with X.509). The wire structs keep the raw JSON values, so what a
//! client may send, and the error it gets for a wrong type, stay those of [`crate::body`]; these
//! types add Atlas's range and enumeration checks, with Atlas's errors.

use std::fmt;

use crate::error::AtlasError;

/// `monthsUntilExpiration` of `POST .../certs`: 1 to 24 months, 3 when omitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonthsUntilExpiration(u32);

impl MonthsUntilExpiration {
    /// The lifetime when the body names none.
    pub const DEFAULT: MonthsUntilExpiration = MonthsUntilExpiration(3);
    /// The longest lifetime Atlas issues.
    pub const MAX: u32 = 24;

    /// The attribute as given (an integral JSON number, or absent): over 24 is
    /// `CERT_EXPIRY_CANNOT_EXCEED_TWO_YEARS`, under 1 is `ATTRIBUTE_NEGATIVE_OR_ZERO`, as in Atlas.
    pub fn from_attribute(value: Option<i64>) -> Result<MonthsUntilExpiration, AtlasError> {
        match value {
            None => Ok(Self::DEFAULT),
            Some(n) if n > i64::from(Self::MAX) => Err(AtlasError::cert_expiry_too_long()),
            Some(n) if n < 1 => Err(AtlasError::attribute_negative_or_zero(
                "monthsUntilExpiration",
            )),
            Some(n) => Ok(MonthsUntilExpiration(
                u32::try_from(n).expect("1..=24 fits in u32"),
            )),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for MonthsUntilExpiration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// `x509Type` of a database user: `NONE` (not an X.509 user), `CUSTOMER` (certificates from the
/// project's own CA) or `MANAGED` (certificates dbcerts issues). On the wire and in the store it
/// is its name, [`X509Type::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum X509Type {
    #[default]
    None,
    Customer,
    Managed,
}

impl X509Type {
    /// Every value, in the order the OpenAPI document lists them.
    pub const ALL: [X509Type; 3] = [X509Type::None, X509Type::Customer, X509Type::Managed];
    /// Their names, in the same order, for the OpenAPI document's enumeration.
    pub const NAMES: [&'static str; 3] = ["NONE", "CUSTOMER", "MANAGED"];

    pub const fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The value named `name` exactly (names are case-sensitive, as in Atlas).
    pub fn parse(name: &str) -> Option<X509Type> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The attribute of a request body: `NONE` when omitted; an unknown name is
    /// `INVALID_ENUM_VALUE` naming it.
    pub fn from_attribute(value: Option<&str>) -> Result<X509Type, AtlasError> {
        match value {
            None => Ok(X509Type::None),
            Some(v) => Self::parse(v).ok_or_else(|| AtlasError::invalid_enum_value(v)),
        }
    }

    /// Whether a stored `x509_type` names this value.
    pub fn is(self, stored: &str) -> bool {
        self.as_str() == stored
    }
}

impl fmt::Display for X509Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_range() {
        let months = |v| MonthsUntilExpiration::from_attribute(v).map(MonthsUntilExpiration::get);
        assert_eq!(months(None).unwrap(), 3);
        assert_eq!(months(Some(1)).unwrap(), 1);
        assert_eq!(months(Some(24)).unwrap(), 24);
        let e = months(Some(25)).unwrap_err();
        assert_eq!(e.code, "CERT_EXPIRY_CANNOT_EXCEED_TWO_YEARS");
        assert_eq!(
            months(Some(i64::MAX)).unwrap_err().code,
            "CERT_EXPIRY_CANNOT_EXCEED_TWO_YEARS"
        );
        for bad in [0, -1, i64::MIN] {
            let e = months(Some(bad)).unwrap_err();
            assert_eq!(e.code, "ATTRIBUTE_NEGATIVE_OR_ZERO", "{bad}");
            assert_eq!(e.parameters, ["monthsUntilExpiration"], "{bad}");
        }
    }

    #[test]
    fn x509_types_round_trip_by_name() {
        for t in X509Type::ALL {
            assert_eq!(X509Type::parse(t.as_str()), Some(t));
            assert_eq!(X509Type::from_attribute(Some(t.as_str())).unwrap(), t);
            assert!(t.is(&t.to_string()));
        }
        assert_eq!(X509Type::NAMES, ["NONE", "CUSTOMER", "MANAGED"]);
        assert_eq!(X509Type::from_attribute(None).unwrap(), X509Type::None);
        for bad in ["managed", "Managed", "", "MANAGED "] {
            assert_eq!(X509Type::parse(bad), None);
            let e = X509Type::from_attribute(Some(bad)).unwrap_err();
            assert_eq!(e.code, "INVALID_ENUM_VALUE");
            assert_eq!(e.parameters, [bad]);
        }
    }
}
