//! Pure PKI for dbcerts: key generation, the Atlas leaf-certificate profile, per-project
//! certificate authorities, OCSP requests and signed responses, the in-memory key pool, sealing
//! of CA keys at rest, and validation of customer CA bundles.
//!
//! This crate never sees HTTP or SQL. Callers hand it plain values (names, times, DER bytes) and
//! get plain values back; persisting them is the store's job and speaking Atlas is the server's.

pub mod customer_ca;
pub mod dn;
mod error;
mod issue;
mod keys;
pub mod ocsp;
pub mod pool;
pub mod sealing;
mod validity;

pub use error::CaError;
pub use issue::{
    CaCertInfo, IssuedCertificate, LeafRequest, ManagedCa, ManagedCaParams, certificate_pem,
    response_pem,
};
pub use keys::{KeyAlgorithm, LeafKey};
pub use validity::{add_months, leaf_validity};

/// A certificate serial: a random, positive, non-zero 63-bit integer. Atlas uses it as the
/// certificate's `_id`.
pub fn random_serial() -> i64 {
    loop {
        let mut bytes = [0u8; 8];
        fill_random(&mut bytes);
        let value = (u64::from_be_bytes(bytes) & (i64::MAX as u64)) as i64;
        if value != 0 {
            return value;
        }
    }
}

/// Fills `dest` from the operating system's CSPRNG (through aws-lc).
///
/// # Panics
/// If the system random source fails, which aws-lc treats as unrecoverable.
pub fn fill_random(dest: &mut [u8]) {
    aws_lc_rs::rand::fill(dest).expect("the system random number generator failed");
}
