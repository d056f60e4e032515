//! The API's own HTTPS certificate: reads the PEM certificate chain and private key named by
//! [`TlsFiles`] into a rustls server config (aws-lc-rs provider, TLS 1.2 and 1.3, ALPN h2 and
//! http/1.1), and swaps in a new one on [`TlsCertificate::reload`]. It never touches the
//! listener or a connection: a connection keeps the config it was accepted with, and a failed
//! reload leaves the config in place.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum_server::tls_rustls::RustlsConfig;
use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

use crate::config::TlsFiles;

/// The certificate new TLS handshakes get. Clones share it, so a reload through one is seen by
/// the acceptor holding another.
#[derive(Clone)]
pub struct TlsCertificate {
    files: TlsFiles,
    config: RustlsConfig,
}

impl std::fmt::Debug for TlsCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsCertificate")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl TlsCertificate {
    /// Reads and checks both files; an error names the file at fault.
    pub fn load(files: &TlsFiles) -> anyhow::Result<TlsCertificate> {
        let config = server_config(files)?;
        Ok(TlsCertificate {
            files: files.clone(),
            config: RustlsConfig::from_config(config),
        })
    }

    /// Reads both files again and, if they hold a usable certificate and key, hands them to
    /// every later handshake. On error the previous certificate stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let config = server_config(&self.files)?;
        self.config.reload_from_config(config);
        Ok(())
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The handle the TLS acceptor reads the current config through.
    pub fn rustls_config(&self) -> RustlsConfig {
        self.config.clone()
    }
}

fn server_config(files: &TlsFiles) -> anyhow::Result<Arc<ServerConfig>> {
    let chain = read_chain(&files.cert)?;
    let key = read_key(&files.key)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .with_context(|| {
            format!(
                "TLS private key {} cannot serve certificate {}",
                files.key.display(),
                files.cert.display()
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_chain(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("reading TLS certificate {}", path.display()))?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("TLS certificate {}: {e}", path.display()))?;
    if chain.is_empty() {
        anyhow::bail!(
            "TLS certificate {} holds no PEM CERTIFICATE block",
            path.display()
        );
    }
    Ok(chain)
}

fn read_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let bytes = Zeroizing::new(
        std::fs::read(path)
            .with_context(|| format!("reading TLS private key {}", path.display()))?,
    );
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "the TLS private key is readable by group or others; chmod 600 it");
    }
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => anyhow::anyhow!(
            "TLS private key {} holds no PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block",
            path.display()
        ),
        e => anyhow::anyhow!("TLS private key {}: {e}", path.display()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> TlsFiles {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let files = TlsFiles {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }

    fn err(files: &TlsFiles) -> String {
        format!("{:#}", TlsCertificate::load(files).unwrap_err())
    }

    #[test]
    fn errors_name_the_file_at_fault() {
        let dir = tempfile::tempdir().unwrap();
        let good = write_pair(dir.path(), "good");
        TlsCertificate::load(&good).unwrap();

        let missing = TlsFiles {
            cert: dir.path().join("missing.crt"),
            ..good.clone()
        };
        let e = err(&missing);
        assert!(
            e.contains("reading TLS certificate") && e.contains("missing.crt"),
            "{e}"
        );

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a PEM file\n").unwrap();
        let e = err(&TlsFiles {
            cert: garbage.clone(),
            ..good.clone()
        });
        assert!(
            e.contains("no PEM CERTIFICATE") && e.contains("garbage.pem"),
            "{e}"
        );
        let e = err(&TlsFiles {
            key: garbage.clone(),
            ..good.clone()
        });
        assert!(
            e.contains("no PEM PRIVATE KEY") && e.contains("garbage.pem"),
            "{e}"
        );

        // Certificate and key swapped: each file holds the wrong kind of block.
        let e = err(&TlsFiles {
            cert: good.key.clone(),
            key: good.cert.clone(),
        });
        assert!(e.contains("good.key"), "{e}");

        let other = write_pair(dir.path(), "other");
        let e = err(&TlsFiles {
            cert: good.cert.clone(),
            key: other.key.clone(),
        });
        assert!(
            e.contains("other.key") && e.contains("good.crt") && e.contains("cannot serve"),
            "{e}"
        );
    }

    #[test]
    fn a_failed_reload_keeps_the_old_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_pair(dir.path(), "server");
        let tls = TlsCertificate::load(&files).unwrap();
        let before = tls.rustls_config().get_inner();

        std::fs::write(&files.cert, "truncated").unwrap();
        assert!(tls.reload().is_err());
        assert!(Arc::ptr_eq(&before, &tls.rustls_config().get_inner()));

        write_pair(dir.path(), "server");
        tls.reload().unwrap();
        assert!(!Arc::ptr_eq(&before, &tls.rustls_config().get_inner()));
    }
}
