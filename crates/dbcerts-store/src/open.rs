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

/// The URL with any password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{tail}")
        }
        None => url.to_owned(),
    }
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
