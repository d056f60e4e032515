//! Property checks for dbcerts' five input parsers, one module per fuzz target.
//!
//! Each module's `check(&[u8])` runs the parser on the input and asserts properties that hold
//! for every input (not only "does not panic"). The same files are compiled into the normal
//! test suite (`crates/dbcerts-server/tests/parser_properties.rs`,
//! `crates/dbcerts-ca/tests/bundle_properties.rs`, `crates/dbcerts-ca/tests/ocsp_properties.rs`)
//! with `#[path]`, which runs them under proptest and over the committed corpus, on the stable
//! toolchain.

pub mod customer_ca_bundle;
pub mod digest_header;
pub mod json_bodies;
pub mod ocsp_request;
pub mod query_params;
