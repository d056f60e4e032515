//! CRLs signed by `ManagedCa::sign_crl`, checked by the real `openssl` command: `openssl crl`
//! reads back the number, dates, authority key identifier and reasons, and `openssl verify
//! -crl_check` refuses exactly the revoked leaves, also from a file holding several CRLs.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Duration, Utc};
use dbcerts_ca::{
    CaError, CrlEntry, CrlParams, KeyAlgorithm, LeafRequest, ManagedCa, ManagedCaParams, crl_pem,
    leaf_validity,
};

fn pem(tag: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(tag, der))
}

fn ca(group: &str, alg: KeyAlgorithm) -> ManagedCa {
    ManagedCa::create(group, &ManagedCaParams::default(), alg, Utc::now()).unwrap()
}

fn leaf(ca: &ManagedCa, serial: i64) -> String {
    let key = KeyAlgorithm::EcdsaP256.generate().unwrap();
    let (nb, na) = leaf_validity(Utc::now(), 3).unwrap();
    let cert = ca
        .issue(
            &LeafRequest {
                username: "crl-user",
                serial,
                not_before: nb,
                not_after: na,
            },
            &key,
        )
        .unwrap();
    pem("CERTIFICATE", &cert.der)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs openssl; returns (success, stdout + stderr).
fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn verify(ca: &Path, crl: &Path, leaf: &Path) -> (bool, String) {
    openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        ca.to_str().unwrap(),
        "-CRLfile",
        crl.to_str().unwrap(),
        leaf.to_str().unwrap(),
    ])
}

fn params(number: u64, now: DateTime<Utc>) -> CrlParams {
    CrlParams {
        number,
        this_update: now - Duration::minutes(5),
        next_update: now + Duration::days(7),
    }
}

#[test]
fn openssl_refuses_the_revoked_leaf_and_reads_number_reason_dates_and_aki() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("5efda6aea3f2ed2e7dd6ce05", KeyAlgorithm::EcdsaP256);
    let revoked = write(dir.path(), "revoked.pem", &leaf(&ca, 0x1234_5678_9abc));
    let good = write(dir.path(), "good.pem", &leaf(&ca, 42));
    let ca_file = write(dir.path(), "ca.pem", &ca.cert_pem());
    let now = Utc::now();
    let entries = [
        CrlEntry {
            serial: 0x1234_5678_9abc,
            revoked_at: now - Duration::minutes(1),
            reason: 1,
        },
        // Not issued here; shows a second reason in the listing.
        CrlEntry {
            serial: 7,
            revoked_at: now - Duration::minutes(2),
            reason: 5,
        },
    ];
    let der = ca.sign_crl(&params(7, now), &entries).unwrap();
    let crl_file = write(dir.path(), "crl.pem", &crl_pem(&der));

    let (ok, text) = verify(&ca_file, &crl_file, &revoked);
    assert!(!ok, "{text}");
    assert!(text.contains("certificate revoked"), "{text}");
    let (ok, text) = verify(&ca_file, &crl_file, &good);
    assert!(ok, "{text}");
    assert!(text.contains(": OK"), "{text}");

    let (ok, text) = openssl(&["crl", "-in", crl_file.to_str().unwrap(), "-noout", "-text"]);
    assert!(ok, "{text}");
    assert!(text.contains("Version 2 (0x1)"), "{text}");
    assert!(
        text.contains("Issuer: CN = 5efda6aea3f2ed2e7dd6ce05, OU = Atlas, O = MongoDB Inc"),
        "{text}"
    );
    assert!(
        text.contains("X509v3 CRL Number: \n                7\n"),
        "{text}"
    );
    let ski: Vec<String> = ca.key_id().iter().map(|b| format!("{b:02X}")).collect();
    assert!(text.contains(&ski.join(":")), "AKI is the CA's SKI: {text}");
    assert!(text.contains("Serial Number: 123456789ABC"), "{text}");
    assert!(text.contains("Key Compromise"), "{text}");
    assert!(text.contains("Serial Number: 07"), "{text}");
    assert!(text.contains("Cessation Of Operation"), "{text}");
    let fmt = |t: DateTime<Utc>| t.format("%b %e %H:%M:%S %Y GMT").to_string();
    assert!(
        text.contains(&format!("Last Update: {}", fmt(now - Duration::minutes(5)))),
        "{text}"
    );
    assert!(
        text.contains(&format!("Next Update: {}", fmt(now + Duration::days(7)))),
        "{text}"
    );
    // Signed by the CA: openssl checks the signature against the CA certificate.
    let (ok, text) = openssl(&[
        "crl",
        "-in",
        crl_file.to_str().unwrap(),
        "-noout",
        "-CAfile",
        ca_file.to_str().unwrap(),
    ]);
    assert!(ok && text.contains("verify OK"), "{text}");
}

#[test]
fn unspecified_reason_is_no_reason_extension_and_still_revokes() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("aaaaaaaaaaaaaaaaaaaaaaaa", KeyAlgorithm::EcdsaP256);
    let revoked = write(dir.path(), "revoked.pem", &leaf(&ca, 99));
    let ca_file = write(dir.path(), "ca.pem", &ca.cert_pem());
    let entry = CrlEntry {
        serial: 99,
        revoked_at: Utc::now(),
        reason: 0,
    };
    let der = ca.sign_crl(&params(1, Utc::now()), &[entry]).unwrap();
    let crl_file = write(dir.path(), "crl.pem", &crl_pem(&der));
    let (ok, text) = verify(&ca_file, &crl_file, &revoked);
    assert!(!ok && text.contains("certificate revoked"), "{text}");
    let (_, text) = openssl(&["crl", "-in", crl_file.to_str().unwrap(), "-noout", "-text"]);
    assert!(text.contains("Serial Number: 63"), "{text}");
    assert!(!text.contains("CRL Reason Code"), "{text}");
}

#[test]
fn an_empty_crl_lets_everyone_through_and_large_numbers_stay_positive() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("bbbbbbbbbbbbbbbbbbbbbbbb", KeyAlgorithm::EcdsaP256);
    let good = write(dir.path(), "good.pem", &leaf(&ca, 5));
    let ca_file = write(dir.path(), "ca.pem", &ca.cert_pem());
    let der = ca.sign_crl(&params(u64::MAX, Utc::now()), &[]).unwrap();
    let crl_file = write(dir.path(), "crl.pem", &crl_pem(&der));
    let (ok, text) = verify(&ca_file, &crl_file, &good);
    assert!(ok, "{text}");
    let (_, text) = openssl(&["crl", "-in", crl_file.to_str().unwrap(), "-noout", "-text"]);
    assert!(text.contains("No Revoked Certificates."), "{text}");
    assert!(
        text.contains("CRL Number: \n                18446744073709551615\n"),
        "{text}"
    );
    let (_, text) = openssl(&[
        "crl",
        "-in",
        crl_file.to_str().unwrap(),
        "-noout",
        "-crlnumber",
    ]);
    assert_eq!(text.trim(), "crlNumber=0xFFFFFFFFFFFFFFFF");
}

/// What `GET .../crl` serves for a project with two issuers: both CRLs in one PEM file.
/// OpenSSL (and so mongod, which loads `net.tls.CRLFile` through it) uses each for its issuer.
#[test]
fn one_file_with_several_crls_checks_each_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let first = ca("cccccccccccccccccccccccc", KeyAlgorithm::EcdsaP256);
    let second = ca("dddddddddddddddddddddddd", KeyAlgorithm::Rsa2048);
    let bundle = format!("{}{}", first.cert_pem(), second.cert_pem());
    let ca_file = write(dir.path(), "bundle.pem", &bundle);
    let now = Utc::now();
    let revoke = |serial| CrlEntry {
        serial,
        revoked_at: now,
        reason: 4,
    };
    let crls = format!(
        "{}{}",
        crl_pem(&first.sign_crl(&params(3, now), &[revoke(11)]).unwrap()),
        crl_pem(&second.sign_crl(&params(9, now), &[revoke(21)]).unwrap()),
    );
    let crl_file = write(dir.path(), "crls.pem", &crls);
    for (ca, serial, revoked) in [
        (&first, 11, true),
        (&first, 12, false),
        (&second, 21, true),
        (&second, 22, false),
    ] {
        let leaf_file = write(dir.path(), &format!("{serial}.pem"), &leaf(ca, serial));
        let (ok, text) = verify(&ca_file, &crl_file, &leaf_file);
        assert_eq!(!ok, revoked, "serial {serial}: {text}");
        if revoked {
            assert!(text.contains("certificate revoked"), "{text}");
        }
    }
    // With only the first CA's CRL, a leaf of the second has no CRL: openssl refuses it,
    // which is why every issuer's CRL must be in the file.
    let only_first = write(
        dir.path(),
        "first.pem",
        &crl_pem(&first.sign_crl(&params(4, now), &[]).unwrap()),
    );
    let leaf_file = write(dir.path(), "22b.pem", &leaf(&second, 22));
    let (ok, text) = verify(&ca_file, &only_first, &leaf_file);
    assert!(
        !ok && text.contains("unable to get certificate CRL"),
        "{text}"
    );
}

#[test]
fn a_crl_past_its_next_update_fails_everyone() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("eeeeeeeeeeeeeeeeeeeeeeee", KeyAlgorithm::EcdsaP256);
    let good = write(dir.path(), "good.pem", &leaf(&ca, 5));
    let ca_file = write(dir.path(), "ca.pem", &ca.cert_pem());
    let now = Utc::now();
    let stale = CrlParams {
        number: 2,
        this_update: now - Duration::hours(2),
        next_update: now - Duration::hours(1),
    };
    let crl_file = write(
        dir.path(),
        "crl.pem",
        &crl_pem(&ca.sign_crl(&stale, &[]).unwrap()),
    );
    let (ok, text) = verify(&ca_file, &crl_file, &good);
    assert!(!ok && text.contains("CRL has expired"), "{text}");
}

#[test]
fn a_ca_rebuilt_from_parts_signs_the_same_aki_and_bad_input_is_refused() {
    let ca = ca("ffffffffffffffffffffffff", KeyAlgorithm::EcdsaP256);
    let again = ManagedCa::from_parts(ca.cert_der(), &ca.key_pkcs8_der()).unwrap();
    assert_eq!(ca.key_id(), again.key_id());
    assert_eq!(ca.key_id().len(), 20);
    let now = Utc::now();
    let backwards = CrlParams {
        number: 1,
        this_update: now,
        next_update: now,
    };
    assert!(matches!(
        again.sign_crl(&backwards, &[]),
        Err(CaError::Crl(_))
    ));
    let bad = CrlEntry {
        serial: 1,
        revoked_at: now,
        reason: 7,
    };
    assert!(matches!(
        again.sign_crl(&params(1, now), &[bad]),
        Err(CaError::Crl(_))
    ));
    let negative = CrlEntry {
        serial: -1,
        revoked_at: now,
        reason: 1,
    };
    assert!(matches!(
        again.sign_crl(&params(1, now), &[negative]),
        Err(CaError::Crl(_))
    ));
}
