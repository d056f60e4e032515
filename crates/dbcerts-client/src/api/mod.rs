//! Typed operations, one module per resource, each an `impl Client` block named after the
//! Atlas operationIds, with the request and response shapes of its resource.

pub mod api_keys;
pub mod certs;
pub mod crl;
pub mod database_users;
pub mod extension;
pub mod projects;
pub mod revocation;
pub mod service_accounts;
pub mod user_security;
