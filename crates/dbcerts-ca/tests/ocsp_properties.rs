//! Property tests for the OCSP request parser (`ocsp::parse_request`) and the signed answers
//! built from what it accepts.
//!
//! The properties live in `fuzz/src/ocsp_request.rs` and are shared with the `ocsp_request`
//! cargo-fuzz target (see `fuzz/README.md`); here proptest drives them on the stable
//! toolchain, over requests generated structurally (CertIDs with any hash algorithm, hash
//! length and serial; nonces of any length; critical and non-critical extensions), over every
//! truncation and single-byte change of real `openssl ocsp` requests, and over arbitrary bytes.
//! Every file of the committed fuzz seeds and corpus is replayed through them.

#[path = "../../../fuzz/src/ocsp_request.rs"]
mod ocsp_request;

use std::path::PathBuf;

use dbcerts_ca::ocsp::{MAX_CERTS_PER_REQUEST, MAX_NONCE_BYTES, RequestProblem};
use ocsp_request::check_request;
use proptest::prelude::*;
use x509_cert::der::asn1::{Null, ObjectIdentifier, OctetString};
use x509_cert::der::{Any, Encode};
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{CertId, OcspRequest, Request, TbsRequest};

const NONCE: &str = "1.3.6.1.5.5.7.48.1.2";

/// (OID, digest length) of the CertID hashes generated: the four accepted, and MD5 (refused).
const HASHES: [(&str, usize); 5] = [
    ("1.3.14.3.2.26", 20),
    ("2.16.840.1.101.3.4.2.1", 32),
    ("2.16.840.1.101.3.4.2.2", 48),
    ("2.16.840.1.101.3.4.2.3", 64),
    ("1.2.840.113549.2.5", 16),
];

#[derive(Debug, Clone)]
struct GenCert {
    hash: usize,
    null_params: bool,
    name_len_delta: i8,
    key_len_delta: i8,
    serial: Vec<u8>,
    critical_ext: bool,
}

#[derive(Debug, Clone)]
struct GenRequest {
    certs: Vec<GenCert>,
    nonces: Vec<Vec<u8>>,
    other_ext_critical: Option<bool>,
}

fn gen_cert() -> impl Strategy<Value = GenCert> {
    (
        0..HASHES.len(),
        any::<bool>(),
        prop_oneof![8 => Just(0i8), 1 => -2i8..=2],
        prop_oneof![8 => Just(0i8), 1 => -2i8..=2],
        // Positive serials (most), with leading zero, negative, long.
        prop_oneof![
            4 => (1u64..=u64::MAX).prop_map(|v| v.to_be_bytes().to_vec()),
            1 => proptest::collection::vec(any::<u8>(), 1..=19),
        ],
        prop_oneof![9 => Just(false), 1 => Just(true)],
    )
        .prop_map(
            |(hash, null_params, name_len_delta, key_len_delta, serial, critical_ext)| GenCert {
                hash,
                null_params,
                name_len_delta,
                key_len_delta,
                serial,
                critical_ext,
            },
        )
}

fn gen_request() -> impl Strategy<Value = GenRequest> {
    (
        proptest::collection::vec(gen_cert(), 0..=MAX_CERTS_PER_REQUEST + 2),
        prop_oneof![
            3 => proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..=32), 0..=1),
            1 => proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..=MAX_NONCE_BYTES + 8),
                0..=2
            ),
        ],
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(certs, nonces, other_ext_critical)| GenRequest {
            certs,
            nonces,
            other_ext_critical,
        })
}

fn oid(s: &str) -> ObjectIdentifier {
    ObjectIdentifier::new(s).unwrap()
}

fn ext(id: &str, critical: bool, value: Vec<u8>) -> Extension {
    Extension {
        extn_id: oid(id),
        critical,
        extn_value: OctetString::new(value).unwrap(),
    }
}

fn sized(len: usize, delta: i8) -> Vec<u8> {
    vec![0xab; len.saturating_add_signed(delta as isize)]
}

/// The DER of `g`, and what the parser must say about it (computed from `g`, not from the
/// bytes).
fn encode(g: &GenRequest) -> (Vec<u8>, Option<&'static str>) {
    let mut expected = None;
    let mut refuse = |why: &'static str| {
        expected.get_or_insert(why);
    };
    if g.certs.is_empty() {
        refuse("Empty");
    } else if g.certs.len() > MAX_CERTS_PER_REQUEST {
        refuse("TooMany");
    }
    let mut extensions = Vec::new();
    for n in &g.nonces {
        extensions.push(ext(
            NONCE,
            false,
            OctetString::new(n.clone()).unwrap().to_der().unwrap(),
        ));
    }
    if g.nonces.len() > 1 {
        refuse("TwoNonces");
    } else if g
        .nonces
        .first()
        .is_some_and(|n| n.is_empty() || n.len() > MAX_NONCE_BYTES)
    {
        refuse("NonceLength");
    }
    if let Some(critical) = g.other_ext_critical {
        // Preferred-signature-algorithms (RFC 6960 §4.4.7), which dbcerts does not implement.
        extensions.push(ext("1.3.6.1.5.5.7.48.1.8", critical, vec![0x30, 0x00]));
        if critical {
            refuse("CriticalExtension");
        }
    }
    let mut list = Vec::new();
    for c in &g.certs {
        let (hash_oid, len) = HASHES[c.hash];
        if c.hash == 4 {
            refuse("UnsupportedHash");
        } else if c.name_len_delta != 0 || c.key_len_delta != 0 {
            refuse("HashLength");
        }
        if c.critical_ext {
            refuse("CriticalExtension");
        }
        let serial = SerialNumber::new(&c.serial).unwrap();
        list.push(Request {
            req_cert: CertId {
                hash_algorithm: AlgorithmIdentifierOwned {
                    oid: oid(hash_oid),
                    parameters: c.null_params.then(|| Any::from(Null)),
                },
                issuer_name_hash: OctetString::new(sized(len, c.name_len_delta)).unwrap(),
                issuer_key_hash: OctetString::new(sized(len, c.key_len_delta)).unwrap(),
                serial_number: serial,
            },
            single_request_extensions: c
                .critical_ext
                .then(|| vec![ext("1.3.6.1.5.5.7.48.1.7", true, vec![0x05, 0x00])]),
        });
    }
    let request = OcspRequest {
        tbs_request: TbsRequest {
            version: Default::default(),
            requestor_name: None,
            request_list: list,
            request_extensions: (!extensions.is_empty()).then_some(extensions),
        },
        optional_signature: None,
    };
    (request.to_der().unwrap(), expected)
}

fn problem_name(p: &RequestProblem) -> &'static str {
    match p {
        RequestProblem::TooLarge(_) => "TooLarge",
        RequestProblem::NotDer(_) => "NotDer",
        RequestProblem::Empty => "Empty",
        RequestProblem::TooMany(_) => "TooMany",
        RequestProblem::UnsupportedHash(_) => "UnsupportedHash",
        RequestProblem::HashLength { .. } => "HashLength",
        RequestProblem::CriticalExtension(_) => "CriticalExtension",
        RequestProblem::NonceLength(_) => "NonceLength",
        RequestProblem::TwoNonces => "TwoNonces",
    }
}

fn seeds() -> Vec<(PathBuf, Vec<u8>)> {
    files("seeds/ocsp_request")
}

fn files(dir: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(dir);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn generated_requests_are_judged_as_built(g in gen_request()) {
        let (der, expected) = encode(&g);
        let got = check_request(&der);
        match (expected, &got) {
            (None, Ok(query)) => prop_assert_eq!(query.certs().len(), g.certs.len()),
            (Some(why), Err(problem)) => {
                // Several faults at once: the parser may name any one of them, but only a
                // fault the request has.
                let name = problem_name(problem);
                let all = faults(&g);
                prop_assert!(all.contains(&name), "{} not among {:?} (first {})", name, all, why);
            }
            (expected, got) => prop_assert!(false, "expected {:?}, got {:?}", expected, got),
        }
    }

    #[test]
    fn arbitrary_bytes_never_break_the_properties(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = check_request(&data);
    }

    #[test]
    fn one_changed_byte_of_a_real_request(pick in any::<proptest::sample::Index>(), at in any::<proptest::sample::Index>(), byte in any::<u8>()) {
        let seeds = seeds();
        let (_, data) = &seeds[pick.index(seeds.len())];
        let mut changed = data.clone();
        let i = at.index(changed.len());
        changed[i] = byte;
        let _ = check_request(&changed);
    }
}

/// Every fault `g` has, by name.
fn faults(g: &GenRequest) -> Vec<&'static str> {
    let mut all = Vec::new();
    if g.certs.is_empty() {
        all.push("Empty");
    }
    if g.certs.len() > MAX_CERTS_PER_REQUEST {
        all.push("TooMany");
    }
    if g.nonces.len() > 1 {
        all.push("TwoNonces");
    }
    if g.nonces
        .iter()
        .any(|n| n.is_empty() || n.len() > MAX_NONCE_BYTES)
    {
        all.push("NonceLength");
    }
    if g.other_ext_critical == Some(true) || g.certs.iter().any(|c| c.critical_ext) {
        all.push("CriticalExtension");
    }
    if g.certs.iter().any(|c| c.hash == 4) {
        all.push("UnsupportedHash");
    }
    if g.certs
        .iter()
        .any(|c| c.hash != 4 && (c.name_len_delta != 0 || c.key_len_delta != 0))
    {
        all.push("HashLength");
    }
    all
}

#[test]
fn every_truncation_of_real_requests_is_refused() {
    for (path, data) in seeds() {
        for cut in 0..data.len() {
            let got = check_request(&data[..cut]);
            assert!(
                matches!(got, Err(RequestProblem::NotDer(_))),
                "{} cut at {cut}: {got:?}",
                path.display()
            );
        }
    }
}

#[test]
fn the_openssl_seeds_are_read_as_openssl_meant_them() {
    let read = |name: &str| {
        let (_, data) = seeds()
            .into_iter()
            .find(|(p, _)| p.file_name().unwrap() == name)
            .unwrap_or_else(|| panic!("seed {name}"));
        check_request(&data)
    };
    let one = read("sha1_with_nonce.der").unwrap();
    assert_eq!(one.certs()[0].serial(), Some(0x1234_5678_90ab_cdef));
    assert!(one.nonce().is_some());
    assert!(read("sha1_no_nonce.der").unwrap().nonce().is_none());
    let three = read("three_certs.der").unwrap();
    let serials: Vec<_> = three.certs().iter().map(|c| c.serial()).collect();
    assert_eq!(
        serials,
        vec![Some(0x1234_5678_90ab_cdef), Some(0x7a11), Some(1)]
    );
    assert_eq!(
        read("serial_2_pow_64_minus_1.der").unwrap().certs()[0].serial(),
        None
    );
    assert_eq!(
        read("negative_serial.der").unwrap().certs()[0].serial(),
        None
    );
    // A request signature is ignored: signed requests are answered like unsigned ones.
    assert_eq!(read("signed_with_chain.der").unwrap().certs().len(), 1);
    assert_eq!(read("signed_with_cert.der").unwrap().certs().len(), 1);
}

#[test]
fn an_oversized_request_is_refused_before_it_is_read() {
    let data = vec![0x30; dbcerts_ca::ocsp::MAX_REQUEST_BYTES + 1];
    assert_eq!(
        check_request(&data).err(),
        Some(RequestProblem::TooLarge(data.len()))
    );
}

// ---- the fuzz corpus as a regression suite ----

#[test]
fn fuzz_corpus_ocsp_request() {
    let mut count = 0;
    for (path, data) in files("corpus/ocsp_request").into_iter().chain(seeds()) {
        let outcome = std::panic::catch_unwind(|| ocsp_request::check(&data));
        assert!(
            outcome.is_ok(),
            "{} fails the OCSP request properties",
            path.display()
        );
        count += 1;
    }
    assert!(count >= 8, "the seeds are there");
}
