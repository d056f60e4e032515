//! A typed async client for the Atlas Administration API subset that dbcerts serves:
//! projects, database users, X.509 certificates, user security, API keys, service accounts,
//! and the dbcerts CA extension.
//!
//! ```no_run
//! use dbcerts_client::{Client, Credentials, ListOptions};
//!
//! # async fn run() -> Result<(), dbcerts_client::ClientError> {
//! let client = Client::builder("https://dbcerts.example.com")
//!     .credentials(Credentials::api_key("abcdefgh", "1b2c3d4e-…"))
//!     .build()?;
//! let page = client.list_groups(ListOptions::default()).await?;
//! for project in page.results {
//!     let cert = client.create_database_user_cert(&project.id, "alice", Some(3)).await?;
//!     std::fs::write("alice.pem", cert.pem()).ok();
//! }
//! # Ok(()) }
//! ```
//!
//! Authentication is HTTP Digest for API keys (one challenge, then the nonce is reused with an
//! increasing count) or OAuth 2.0 client credentials for service accounts (the token is cached
//! and renewed before it expires). Secrets, tokens and private keys live in [`Secret`] or
//! [`IssuedCertificate`], which wipe them on drop and never print them; this crate logs only
//! methods, paths and statuses (at `debug`).
//!
//! Errors are [`ClientError`]s; [`ClientError::class`] sorts them into usage, authentication,
//! not-found, server and transport failures.

#![warn(missing_docs)]

pub mod api;
mod credentials;
mod digest;
mod error;
mod http;
mod oauth;
mod paging;

pub use api::api_keys::{
    AccessListEntry, AccessListRequest, ApiKey, ApiKeyRole, ApiKeyUpdate, NewApiKey,
};
pub use api::certs::{
    ExpiringCertificate, IssuedCertificate, ManagedUserCerts, UserCert, expiring_before,
};
pub use api::database_users::{
    ADMIN, ComponentLabel, DatabaseUser, DatabaseUserRole, DatabaseUserUpdate, EXTERNAL,
    NewDatabaseUser, UserScope, X509Type,
};
pub use api::projects::{NewProject, Project, ResourceTag};
pub use api::revocation::{CertStatus, RevokedCerts};
pub use api::service_accounts::{
    NewServiceAccount, ServiceAccount, ServiceAccountSecret, ServiceAccountUpdate,
};
pub use api::user_security::{
    CustomerX509, LdapSettings, UserSecurity, UserSecurityUpdate, UserToDnMapping,
};
pub use credentials::{Credentials, Secret};
pub use digest::answerable_challenge;
pub use error::{ApiError, ClientError, ErrorClass};
pub use http::{
    API_V2, Client, ClientBuilder, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, MEDIA_TYPE_2023_01_01,
    MEDIA_TYPE_2024_08_05,
};
pub use oauth::CachedToken;
pub use paging::{
    DEFAULT_ITEMS_PER_PAGE, Link, ListOptions, MAX_ITEMS_PER_PAGE, Page, Pages, list_all,
};
