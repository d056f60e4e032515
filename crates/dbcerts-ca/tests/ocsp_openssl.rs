//! OCSP requests made by the real `openssl ocsp`, parsed by `dbcerts_ca::ocsp`, answered with a
//! response signed by the managed CA, and read back by `openssl ocsp -respin`: the status
//! (good, revoked with time and reason, unknown), "Response verify OK" against the CA alone,
//! the nonce check, SHA-1 and SHA-256 CertIDs, and the failure statuses.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{DateTime, Duration, TimeZone, Utc};
use dbcerts_ca::ocsp::{
    CertIdHash, CertState, OcspFailure, OcspIssuer, error_response, parse_request,
};
use dbcerts_ca::{KeyAlgorithm, LeafRequest, ManagedCa, ManagedCaParams, leaf_validity};

const GROUP: &str = "5efda6aea3f2ed2e7dd6ce05";

struct Fixture {
    dir: tempfile::TempDir,
    ca: ManagedCa,
}

impl Fixture {
    fn new(alg: KeyAlgorithm) -> Fixture {
        let ca = ManagedCa::create(GROUP, &ManagedCaParams::default(), alg, Utc::now()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
        Fixture { dir, ca }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Issues a leaf with `serial` and writes it to `<name>.pem`.
    fn leaf(&self, name: &str, serial: i64) -> PathBuf {
        let key = KeyAlgorithm::EcdsaP256.generate().unwrap();
        let (nb, na) = leaf_validity(Utc::now(), 1).unwrap();
        let req = LeafRequest {
            username: name,
            serial,
            not_before: nb,
            not_after: na,
        };
        let cert = self.ca.issue(&req, &key).unwrap();
        let path = self.path(&format!("{name}.pem"));
        let pem = pem::encode(&pem::Pem::new("CERTIFICATE", cert.der));
        std::fs::write(&path, pem).unwrap();
        path
    }

    /// The CA's signed answer, valid for an hour.
    fn answer(&self, query: &dbcerts_ca::ocsp::OcspQuery, states: &[CertState]) -> Vec<u8> {
        let now = Utc::now();
        self.ca
            .ocsp_response(query, states, now, now + Duration::hours(1))
            .unwrap()
    }

    /// `openssl ocsp -issuer ca.pem <args> -reqout req.der`: the request bytes openssl makes.
    fn request(&self, args: &[&str]) -> Vec<u8> {
        let out = self.path("req.der");
        let mut cmd = Command::new("openssl");
        cmd.arg("ocsp").arg("-issuer").arg(self.path("ca.pem"));
        cmd.args(args).arg("-reqout").arg(&out);
        ok(cmd.output().unwrap());
        std::fs::read(out).unwrap()
    }

    /// openssl's reading of `response` to `request`, stdout and stderr of two runs together,
    /// and whether both succeeded: `openssl ocsp -reqin req.der -respin resp.der -CAfile ca.pem
    /// -resp_text` (signature and nonce checked against the request as sent), then, with `args`
    /// (`-cert`/`-serial`), `openssl ocsp -respin resp.der -issuer ca.pem -CAfile ca.pem
    /// -no_nonce <args>` for its per-certificate summary (openssl builds a fresh request, with
    /// a fresh nonce, whenever `-cert` is given, so the nonce is checked by the first run).
    fn read_back(&self, request: &[u8], response: &[u8], args: &[&str]) -> (bool, String) {
        std::fs::write(self.path("req.der"), request).unwrap();
        std::fs::write(self.path("resp.der"), response).unwrap();
        let run = |extra: &[&str]| {
            let out = Command::new("openssl")
                .arg("ocsp")
                .arg("-respin")
                .arg(self.path("resp.der"))
                .arg("-issuer")
                .arg(self.path("ca.pem"))
                .arg("-CAfile")
                .arg(self.path("ca.pem"))
                .args(extra)
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status.success(), text)
        };
        let req = self.path("req.der");
        let (first_ok, first) = run(&["-reqin", p(&req), "-resp_text"]);
        let mut summary_args = vec!["-no_nonce"];
        summary_args.extend_from_slice(args);
        let (second_ok, second) = run(&summary_args);
        (first_ok && second_ok, format!("{first}{second}"))
    }
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "openssl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The answers a store would give: `revoked` serials revoked at `at` with `reason`, `known`
/// good, everything else unknown.
fn states_for(
    issuer: &OcspIssuer,
    query: &dbcerts_ca::ocsp::OcspQuery,
    known: &[i64],
    revoked: &[(i64, DateTime<Utc>, u8)],
) -> Vec<CertState> {
    query
        .certs()
        .iter()
        .map(|c| {
            assert!(issuer.matches(c), "the request names this CA");
            match c.serial() {
                Some(s) if revoked.iter().any(|r| r.0 == s) => {
                    let r = revoked.iter().find(|r| r.0 == s).unwrap();
                    CertState::Revoked {
                        at: r.1,
                        reason: r.2,
                    }
                }
                Some(s) if known.contains(&s) => CertState::Good,
                _ => CertState::Unknown,
            }
        })
        .collect()
}

fn good_revoked_unknown(alg: KeyAlgorithm) {
    let f = Fixture::new(alg);
    let good = f.leaf("good", 1001);
    let revoked = f.leaf("revoked", 1002);
    let request = f.request(&[
        "-cert",
        p(&good),
        "-cert",
        p(&revoked),
        "-serial",
        "0x7a11", // a serial this CA never issued
    ]);
    let query = parse_request(&request).unwrap();
    assert_eq!(query.certs().len(), 3);
    assert!(query.certs().iter().all(|c| c.hash() == CertIdHash::Sha1));
    assert!(query.nonce().is_some(), "openssl sends a nonce by default");
    let issuer = f.ca.ocsp_issuer();
    let revoked_at = Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap();
    let states = states_for(&issuer, &query, &[1001, 1002], &[(1002, revoked_at, 1)]);
    let response = f.answer(&query, &states);
    let (success, text) = f.read_back(
        &request,
        &response,
        &["-cert", p(&good), "-cert", p(&revoked), "-serial", "0x7a11"],
    );
    assert!(success, "{text}");
    assert!(text.contains("Response verify OK"), "{text}");
    assert!(text.contains(&format!("{}: good", p(&good))), "{text}");
    assert!(
        text.contains(&format!("{}: revoked", p(&revoked))),
        "{text}"
    );
    assert!(text.contains("0x7a11: unknown"), "{text}");
    assert!(
        text.contains("Reason: keyCompromise"),
        "the reason is carried: {text}"
    );
    assert!(
        text.contains("Revocation Time: Mar  4 05:06:07 2026 GMT"),
        "the revocation time is carried: {text}"
    );
    assert!(text.contains("Next Update:"), "{text}");
    assert!(
        !text.contains("WARNING"),
        "no nonce or validity warning: {text}"
    );
}

#[test]
fn openssl_reads_good_revoked_and_unknown_signed_by_a_p256_ca() {
    good_revoked_unknown(KeyAlgorithm::EcdsaP256);
}

#[test]
fn openssl_reads_good_revoked_and_unknown_signed_by_an_rsa_ca() {
    good_revoked_unknown(KeyAlgorithm::Rsa2048);
}

#[test]
fn openssl_finds_the_signer_without_being_given_the_issuer() {
    // A client with only its trust store (-CAfile, no -issuer/-VAfile): the signer must come
    // with the response.
    let f = Fixture::new(KeyAlgorithm::EcdsaP256);
    let leaf = f.leaf("gina", 11);
    let request = f.request(&["-cert", p(&leaf)]);
    let query = parse_request(&request).unwrap();
    let response = f.answer(&query, &[CertState::Good]);
    std::fs::write(f.path("resp.der"), &response).unwrap();
    let out = Command::new("openssl")
        .args(["ocsp", "-respin"])
        .arg(f.path("resp.der"))
        .arg("-CAfile")
        .arg(f.path("ca.pem"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Response verify OK"), "{text}");
}

#[test]
fn openssl_reads_a_p384_signature() {
    let f = Fixture::new(KeyAlgorithm::EcdsaP384);
    let leaf = f.leaf("alice", 77);
    let request = f.request(&["-cert", p(&leaf)]);
    let query = parse_request(&request).unwrap();
    let states = states_for(&f.ca.ocsp_issuer(), &query, &[77], &[]);
    let response = f.answer(&query, &states);
    let (success, text) = f.read_back(&request, &response, &["-cert", p(&leaf)]);
    assert!(success && text.contains("Response verify OK"), "{text}");
    assert!(text.contains(": good"), "{text}");
}

#[test]
fn sha256_cert_ids_match_and_are_echoed() {
    let f = Fixture::new(KeyAlgorithm::EcdsaP256);
    let leaf = f.leaf("bob", 4242);
    let request = f.request(&["-sha256", "-cert", p(&leaf)]);
    let query = parse_request(&request).unwrap();
    assert_eq!(query.certs()[0].hash(), CertIdHash::Sha256);
    assert_eq!(query.certs()[0].serial(), Some(4242));
    let states = states_for(&f.ca.ocsp_issuer(), &query, &[4242], &[]);
    let response = f.answer(&query, &states);
    // openssl looks the answer up by a SHA-256 CertID too: it finds it only if echoed.
    let (success, text) = f.read_back(&request, &response, &["-sha256", "-cert", p(&leaf)]);
    assert!(success && text.contains("Response verify OK"), "{text}");
    assert!(text.contains(": good"), "{text}");
}

#[test]
fn a_request_without_a_nonce_gets_a_response_without_one() {
    let f = Fixture::new(KeyAlgorithm::EcdsaP256);
    let leaf = f.leaf("carol", 9);
    let request = f.request(&["-no_nonce", "-cert", p(&leaf)]);
    let query = parse_request(&request).unwrap();
    assert!(query.nonce().is_none());
    let states = states_for(&f.ca.ocsp_issuer(), &query, &[9], &[]);
    let response = f.answer(&query, &states);
    let (success, text) = f.read_back(&request, &response, &["-cert", p(&leaf)]);
    assert!(success, "{text}");
    // openssl notes a missing nonce only when its request had one.
    assert!(!text.contains("Nonce Verify error"), "{text}");
    assert!(
        text.contains("Response verify OK") && text.contains(": good"),
        "{text}"
    );
}

#[test]
fn another_cas_signature_fails_verification() {
    // The same project id, another key: openssl must refuse the signature.
    let f = Fixture::new(KeyAlgorithm::EcdsaP256);
    let other = ManagedCa::create(
        GROUP,
        &ManagedCaParams::default(),
        KeyAlgorithm::EcdsaP256,
        Utc::now(),
    )
    .unwrap();
    let leaf = f.leaf("mallory", 5);
    let request = f.request(&["-cert", p(&leaf)]);
    let query = parse_request(&request).unwrap();
    assert!(
        !other.ocsp_issuer().matches(&query.certs()[0]),
        "same name, other key: not a match"
    );
    let now = Utc::now();
    let forged = other
        .ocsp_response(&query, &[CertState::Good], now, now + Duration::hours(1))
        .unwrap();
    let (success, text) = f.read_back(&request, &forged, &["-cert", p(&leaf)]);
    assert!(!success || !text.contains("Response verify OK"), "{text}");
    assert!(text.contains("Response Verify Failure"), "{text}");
}

#[test]
fn openssl_reads_the_failure_statuses() {
    let f = Fixture::new(KeyAlgorithm::EcdsaP256);
    let leaf = f.leaf("dave", 6);
    let request = f.request(&["-cert", p(&leaf)]);
    for (failure, words) in [
        (OcspFailure::MalformedRequest, "malformedrequest"),
        (OcspFailure::Unauthorized, "unauthorized"),
        (OcspFailure::InternalError, "internalerror"),
        (OcspFailure::TryLater, "trylater"),
    ] {
        let (success, text) = f.read_back(&request, &error_response(failure), &["-cert", p(&leaf)]);
        assert!(!success, "{text}");
        assert!(
            text.contains(&format!("Responder Error: {words}")),
            "{failure:?}: {text}"
        );
    }
}

#[test]
fn openssl_leaf_with_an_aia_url_names_the_responder() {
    // `openssl ocsp -issuer ... -cert leaf` takes no URL from the leaf, but `x509 -ocsp_uri`
    // prints what clients such as mongod read.
    let f = Fixture::new(KeyAlgorithm::EcdsaP256);
    let key = KeyAlgorithm::EcdsaP256.generate().unwrap();
    let (nb, na) = leaf_validity(Utc::now(), 1).unwrap();
    let url = format!("http://127.0.0.1:9/api/dbcerts/v1/ocsp/{GROUP}");
    let cert =
        f.ca.issue_with_ocsp_url(
            &LeafRequest {
                username: "erin",
                serial: 8,
                not_before: nb,
                not_after: na,
            },
            &key,
            Some(&url),
        )
        .unwrap();
    let path = f.path("erin.pem");
    std::fs::write(&path, pem::encode(&pem::Pem::new("CERTIFICATE", cert.der))).unwrap();
    let out = ok(Command::new("openssl")
        .args(["x509", "-noout", "-ocsp_uri", "-in"])
        .arg(&path)
        .output()
        .unwrap());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), url);
    let out = ok(Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(f.path("ca.pem"))
        .arg(&path)
        .output()
        .unwrap());
    assert!(String::from_utf8_lossy(&out.stdout).contains(": OK"));
}

#[test]
fn the_nonce_is_echoed_and_openssl_checks_it() {
    let f = Fixture::new(KeyAlgorithm::EcdsaP256);
    let leaf = f.leaf("frank", 10);
    let first = f.request(&["-cert", p(&leaf)]);
    let second = f.request(&["-cert", p(&leaf)]);
    let (a, b) = (
        parse_request(&first).unwrap(),
        parse_request(&second).unwrap(),
    );
    assert_ne!(a.nonce(), b.nonce(), "openssl draws a fresh nonce");
    let answer_to_second = f.answer(&b, &[CertState::Good]);
    let (_, text) = f.read_back(&second, &answer_to_second, &["-cert", p(&leaf)]);
    assert!(text.contains("Response verify OK"), "{text}");
    assert!(!text.contains("Nonce Verify error"), "{text}");
    // The same answer offered for the first request: its nonce is not the one echoed.
    let (_, text) = f.read_back(&first, &answer_to_second, &["-cert", p(&leaf)]);
    assert!(text.contains("Nonce Verify error"), "{text}");
}
