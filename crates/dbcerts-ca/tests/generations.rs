//! The CA-rotation pitfall, tested rather than assumed: Atlas's leaves carry no authority key
//! identifier, so a verifier finds a leaf's issuer in a trust bundle by name. These tests put two
//! CA generations of one project in one bundle and check, with the real `openssl verify` and a
//! real TLS handshake (Python's `ssl` server requiring a client certificate, the bundle as its CA
//! file, as `mongod` is configured with `net.tls.CAFile`), which leaves are accepted:
//!
//! - the naive design (both generations named `CN=<groupId>, OU=Atlas, O=MongoDB Inc`) refuses
//!   one generation's valid leaves, whichever order the bundle lists them in;
//! - dbcerts' design (generation 2 on adds `generationQualifier=<n>`) accepts both, and a bundle
//!   without a retired generation refuses that generation's leaves only.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::Utc;
use dbcerts_ca::{KeyAlgorithm, LeafRequest, ManagedCa, ManagedCaParams, leaf_validity};

const GROUP: &str = "5efda6aea3f2ed2e7dd6ce05";
const ALG: KeyAlgorithm = KeyAlgorithm::EcdsaP256;

/// A TLS server configured as `mongod` is for X.509 clients: client certificate required,
/// verified against the CA file. It accepts one connection from a client presenting the given
/// certificate and prints the server's verdict: `accepted` or `refused: <reason>`.
const HANDSHAKE: &str = r#"
import socket, ssl, sys, threading
bundle, server_pem, client_pem = sys.argv[1:4]
sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
sctx.load_cert_chain(server_pem)
sctx.verify_mode = ssl.CERT_REQUIRED
sctx.load_verify_locations(cafile=bundle)
lsock = socket.socket()
lsock.bind(("127.0.0.1", 0))
lsock.listen(1)
lsock.settimeout(60)
result = {}
def serve():
    conn, _ = lsock.accept()
    conn.settimeout(60)
    try:
        tls = sctx.wrap_socket(conn, server_side=True)
        tls.sendall(b"ok")
        tls.close()
        result["r"] = "accepted"
    except ssl.SSLCertVerificationError as e:
        result["r"] = "refused: " + e.verify_message
        conn.close()
    except (ssl.SSLError, OSError) as e:
        result["r"] = "refused: " + str(e)
        conn.close()
t = threading.Thread(target=serve)
t.start()
cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
cctx.check_hostname = False
cctx.verify_mode = ssl.CERT_NONE
cctx.load_cert_chain(client_pem)
try:
    with socket.create_connection(lsock.getsockname(), timeout=60) as s:
        with cctx.wrap_socket(s) as c:
            c.recv(2)
except (ssl.SSLError, OSError):
    pass
t.join()
print(result["r"])
"#;

struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        let dir = Dir {
            dir: tempfile::tempdir().unwrap(),
        };
        // The TLS server's own certificate: the client does not check it.
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        dir.write("server.pem", &(cert.pem() + &key.serialize_pem()));
        dir
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A trust bundle of these CAs, in this order.
    fn bundle(&self, name: &str, cas: &[&ManagedCa]) -> PathBuf {
        let pem: String = cas.iter().map(|ca| ca.cert_pem()).collect();
        self.write(name, &pem)
    }

    /// A leaf of `ca` for `username`: certificate then key, as the API returns it.
    fn leaf(&self, ca: &ManagedCa, username: &str) -> PathBuf {
        let key = ALG.generate().unwrap();
        let (not_before, not_after) = leaf_validity(Utc::now(), 3).unwrap();
        let cert = ca
            .issue(
                &LeafRequest {
                    username,
                    serial: dbcerts_ca::random_serial(),
                    not_before,
                    not_after,
                },
                &key,
            )
            .unwrap();
        let pem = dbcerts_ca::response_pem(&cert.der, &key);
        self.write(&format!("{username}.pem"), &pem)
    }

    /// `openssl verify -CAfile bundle leaf`: `Ok` or openssl's complaint.
    fn verify(&self, bundle: &Path, leaf: &Path) -> Result<(), String> {
        let out = Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(bundle)
            .arg(leaf)
            .output()
            .expect("openssl runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            assert!(text.contains(": OK"), "{text}");
            Ok(())
        } else {
            Err(text)
        }
    }

    /// A TLS handshake with `leaf` as client certificate against a server trusting `bundle`.
    fn handshake(&self, bundle: &Path, leaf: &Path) -> Result<(), String> {
        let out = Command::new("python3")
            .arg("-c")
            .arg(HANDSHAKE)
            .arg(bundle)
            .arg(self.dir.path().join("server.pem"))
            .arg(leaf)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let verdict = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        match verdict.as_str() {
            "accepted" => Ok(()),
            v if v.starts_with("refused: ") => Err(v.to_owned()),
            other => panic!("unexpected handshake output {other:?}"),
        }
    }

    /// Both checks, which must agree: `Ok` when the leaf is accepted.
    fn accepted(&self, bundle: &Path, leaf: &Path) -> Result<(), String> {
        let verify = self.verify(bundle, leaf);
        let tls = self.handshake(bundle, leaf);
        assert_eq!(
            verify.is_ok(),
            tls.is_ok(),
            "openssl verify {verify:?} and the TLS server {tls:?} disagree"
        );
        verify.and(tls)
    }
}

fn generation(n: u32) -> ManagedCa {
    ManagedCa::create_generation(GROUP, &ManagedCaParams::default(), ALG, Utc::now(), n).unwrap()
}

#[test]
fn same_name_generations_in_one_bundle_refuse_valid_leaves() {
    let dir = Dir::new();
    // The naive design: the new CA takes the old one's name (a fresh key, the same DN).
    let old = generation(1);
    let new = generation(1);
    let old_leaf = dir.leaf(&old, "old");
    let new_leaf = dir.leaf(&new, "new");
    // Each leaf is valid: its own CA alone accepts it.
    let only_old = dir.bundle("only-old.pem", &[&old]);
    let only_new = dir.bundle("only-new.pem", &[&new]);
    dir.accepted(&only_old, &old_leaf).unwrap();
    dir.accepted(&only_new, &new_leaf).unwrap();
    // In one bundle, in either order, one generation's valid leaves are refused: OpenSSL picks
    // an issuer by name and does not try the other one when the signature does not match.
    for (name, order) in [("old-new.pem", [&old, &new]), ("new-old.pem", [&new, &old])] {
        let bundle = dir.bundle(name, &order);
        let verdicts = [
            dir.accepted(&bundle, &old_leaf),
            dir.accepted(&bundle, &new_leaf),
        ];
        let refused: Vec<_> = verdicts.iter().filter_map(|v| v.as_ref().err()).collect();
        assert!(
            !refused.is_empty(),
            "{name}: the naive design unexpectedly accepted both generations"
        );
        for why in refused {
            assert!(why.contains("signature"), "{name}: {why}");
        }
    }
}

#[test]
fn distinct_generation_names_accept_old_and_new_leaves_until_retirement() {
    let dir = Dir::new();
    let g1 = generation(1);
    let g1_leaf = dir.leaf(&g1, "first");
    // Before rotation: the bundle is generation 1 alone.
    let before = dir.bundle("before.pem", &[&g1]);
    dir.accepted(&before, &g1_leaf).unwrap();
    // After rotation: both generations, in either order, accept both generations' leaves.
    let g2 = generation(2);
    let g2_leaf = dir.leaf(&g2, "second");
    assert!(dir.accepted(&before, &g2_leaf).is_err());
    for (name, order) in [("g1-g2.pem", [&g1, &g2]), ("g2-g1.pem", [&g2, &g1])] {
        let bundle = dir.bundle(name, &order);
        dir.accepted(&bundle, &g1_leaf).unwrap();
        dir.accepted(&bundle, &g2_leaf).unwrap();
    }
    // A third generation does not disturb the others.
    let g3 = generation(3);
    let g3_leaf = dir.leaf(&g3, "third");
    let all = dir.bundle("all.pem", &[&g3, &g1, &g2]);
    for leaf in [&g1_leaf, &g2_leaf, &g3_leaf] {
        dir.accepted(&all, leaf).unwrap();
    }
    // After generation 1 is retired the bundle holds 2 and 3: its leaves are refused.
    let retired = dir.bundle("retired.pem", &[&g2, &g3]);
    let why = dir.accepted(&retired, &g1_leaf).unwrap_err();
    assert!(why.contains("unable to get local issuer"), "{why}");
    dir.accepted(&retired, &g2_leaf).unwrap();
    dir.accepted(&retired, &g3_leaf).unwrap();
}
