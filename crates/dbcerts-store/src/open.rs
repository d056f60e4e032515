//! Choosing the adapter from a database URL.

use std::sync::Arc;

use crate::{PgStore, SqliteStore, Store, StoreError, StoreResult};

/// An opened store of either kind. The server holds it as `Arc<dyn Store>`; the operator
/// commands that only make sense for one kind (backup, restore) match on it.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Backend {
    /// Opens the store a URL names: `sqlite:` (a file, created if missing) or `postgres:` /
    /// `postgresql:`. Any other scheme is refused; there is no fallback.
    pub async fn open(url: &str) -> StoreResult<Backend> {
        match scheme(url) {
            Some("sqlite") => Ok(Backend::Sqlite(SqliteStore::open_url(url).await?)),
            Some("postgres" | "postgresql") => Ok(Backend::Postgres(PgStore::open_url(url).await?)),
            _ => Err(StoreError::Internal(unsupported_scheme(url))),
        }
    }

    /// Checks a URL's scheme without connecting.
    pub fn check_url(url: &str) -> Result<(), String> {
        match scheme(url) {
            Some("sqlite" | "postgres" | "postgresql") => Ok(()),
            _ => Err(unsupported_scheme(url)),
        }
    }

    pub fn shared(&self) -> Arc<dyn Store> {
        match self {
            Backend::Sqlite(s) => Arc::new(s.clone()),
            Backend::Postgres(s) => Arc::new(s.clone()),
        }
    }

    pub fn store(&self) -> &dyn Store {
        match self {
            Backend::Sqlite(s) => s,
            Backend::Postgres(s) => s,
        }
    }

    pub async fn close(&self) {
        self.store().close().await;
    }

    /// `"sqlite"` or `"postgres"`, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }
}

fn scheme(url: &str) -> Option<&str> {
    url.split_once(':').map(|(s, _)| s)
}

fn unsupported_scheme(url: &str) -> String {
    let shown = scheme(url).unwrap_or(url);
    format!(
        "unsupported database URL scheme {shown:?}: use sqlite:///path/to/dbcerts.db or postgres://user@host:port/database"
    )
}

/// The URL with any password replaced by `***` (in the user information and in `password` or
/// `sslpassword` query parameters), for messages and logs. A URL that does not parse is not
/// shown at all.
pub fn redact_url(url: &str) -> String {
    if !url.contains("://") {
        // `sqlite:dbcerts.db` and the like: no authority, nothing secret.
        return url.to_owned();
    }
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "<database URL that does not parse>".to_owned();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let secret =
                    k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("sslpassword");
                let shown = if secret {
                    "***".to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), shown)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://dbcerts:s3cr%40t@db.internal:5432/dbcerts?sslmode=require"),
            "postgres://dbcerts:***@db.internal:5432/dbcerts?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://dbcerts@127.0.0.1/x"),
            "postgres://dbcerts@127.0.0.1/x"
        );
        assert_eq!(redact_url("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
        assert_eq!(
            redact_url("postgres://dbcerts@db:5432/x?password=hunter2&sslmode=require"),
            "postgres://dbcerts@db:5432/x?password=***&sslmode=require"
        );
        assert_eq!(
            redact_url("postgresql://u@h/x?sslpassword=k3y"),
            "postgresql://u@h/x?sslpassword=***"
        );
        let odd = redact_url("postgres://u:pa/ss@h/x");
        assert!(!odd.contains("ss@"), "{odd}");
        assert_eq!(redact_url("sqlite:dbcerts.db"), "sqlite:dbcerts.db");
    }

    #[test]
    fn schemes() {
        assert!(Backend::check_url("sqlite:///x.db").is_ok());
        assert!(Backend::check_url("postgresql://h/db").is_ok());
        let err = Backend::check_url("mysql://h/db").unwrap_err();
        assert!(err.contains("\"mysql\""), "{err}");
        assert!(Backend::check_url("dbcerts.db").is_err());
    }
}
