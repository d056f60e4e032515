//! The error type of the PKI layer.

/// What went wrong inside the PKI layer. None of these carry key material.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("key generation failed: {0}")]
    KeyGeneration(String),
    #[error("certificate signing failed: {0}")]
    Signing(String),
    #[error("stored CA material is unreadable: {0}")]
    CorruptCa(String),
    #[error("sealed data could not be opened (wrong master key or corrupted data)")]
    Unseal,
    #[error("invalid master key: {0}")]
    MasterKey(String),
    #[error("validity period is out of range")]
    Validity,
    #[error("CRL signing failed: {0}")]
    Crl(String),
    #[error("the certificate would outlive its CA; the project CA must be rotated")]
    OutlivesCa,
}
