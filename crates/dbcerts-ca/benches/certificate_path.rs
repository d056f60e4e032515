//! Criterion benchmarks of the certificate path: the work this crate does for one
//! `POST .../databaseUsers/{username}/certs`.
//!
//! Benchmark ids (`group/function/parameter`):
//!
//! - `keygen/<alg>` for `rsa-4096`, `rsa-2048`, `ecdsa-p256` and `ecdsa-p384`:
//!   [`KeyAlgorithm::generate`], one single-use leaf key (dropping it included). RSA-2048 takes
//!   tens of milliseconds a key and RSA-4096 up to a second, so those run ten flat samples over a
//!   longer measurement time (30 s for RSA-4096, 10 s for RSA-2048).
//! - `sign/<ca alg>-ca/<leaf alg>`: [`ManagedCa::issue`] alone, with a pre-generated leaf key and
//!   a fixed request, so no key generation is counted. The server's project CA has a key of the
//!   server's one `key-algorithm` setting (the leaves get the same; `rsa-4096` by default), so
//!   the ids are `sign/rsa-4096-ca/ecdsa-p256`, `sign/rsa-4096-ca/rsa-4096` and, for a server
//!   configured with `ecdsa-p256`, `sign/ecdsa-p256-ca/ecdsa-p256`.
//! - `pem/response/<leaf alg>` for `ecdsa-p256` and `rsa-4096`: [`response_pem`], the response
//!   body (certificate PEM, then the PKCS#8 private-key PEM), for a certificate issued by the CA
//!   of the same algorithm.
//! - `issue/full/ecdsa-p256`: everything the server does per request on a server configured with
//!   `ecdsa-p256` (so a P-256 CA): generate the leaf key, [`leaf_validity`] for three months
//!   from now, [`random_serial`], [`ManagedCa::issue`], [`response_pem`].
//! - `issue/full_pooled/rsa-4096`: the same on the default server (RSA-4096 CA), except that the
//!   leaf key is taken from keys generated beforehand, as the server serves RSA keys from its key
//!   pool. Cost with an empty pool is this plus `keygen/rsa-4096`.
//!
//! Fixtures (the CAs and the pre-generated leaf keys) are made on first use, so a filtered run
//! generates no RSA key it does not measure.
//!
//! Running:
//!
//! ```text
//! cargo bench -p dbcerts-ca --bench certificate_path            # everything, a few minutes
//! cargo bench -p dbcerts-ca --bench certificate_path -- keygen  # one group (a regex on ids)
//! cargo bench -p dbcerts-ca --bench certificate_path -- --test  # each benchmark once
//! ```
//!
//! `cargo test --all-targets` also runs this file in test mode (each benchmark once).

use std::cell::OnceCell;
use std::hint::black_box;
use std::time::Duration;

use chrono::Utc;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, measurement::WallTime};
use dbcerts_ca::{
    KeyAlgorithm, LeafKey, LeafRequest, ManagedCa, ManagedCaParams, leaf_validity, random_serial,
    response_pem,
};
use zeroize::Zeroizing;

/// The project (group) id in the CA's subject: 24 hex digits, as Atlas's are.
const GROUP_ID: &str = "5efda6aea3f2ed2e7dd6ce05";
/// The database user a certificate is issued to.
const USERNAME: &str = "benchmark-user";
/// Validity of the leaves in months (Atlas's `monthsUntilExpiration` default is 3).
const MONTHS: u32 = 3;
/// RSA-4096 keys generated up front for `issue/full_pooled/rsa-4096`, which hands them out in
/// turn. Reuse does not change the cost: the leaf key is only read while issuing.
const POOLED_KEYS: usize = 4;

/// The CAs and leaf keys the benchmarks share, each made on first use.
#[derive(Default)]
struct Fixtures {
    rsa4096_ca: OnceCell<ManagedCa>,
    p256_ca: OnceCell<ManagedCa>,
    p256_leaf: OnceCell<LeafKey>,
    rsa4096_pool: OnceCell<Vec<LeafKey>>,
}

impl Fixtures {
    /// The project CA of a server configured with `alg`.
    fn ca(&self, alg: KeyAlgorithm) -> &ManagedCa {
        let cell = match alg {
            KeyAlgorithm::Rsa4096 => &self.rsa4096_ca,
            KeyAlgorithm::EcdsaP256 => &self.p256_ca,
            other => unreachable!("no CA fixture for {other}"),
        };
        cell.get_or_init(|| {
            ManagedCa::create(GROUP_ID, &ManagedCaParams::default(), alg, Utc::now())
                .expect("creating the CA fixture")
        })
    }

    /// A pre-generated leaf key of `alg`.
    fn leaf(&self, alg: KeyAlgorithm) -> &LeafKey {
        match alg {
            KeyAlgorithm::Rsa4096 => &self.rsa4096_pool()[0],
            KeyAlgorithm::EcdsaP256 => self.p256_leaf.get_or_init(|| generate(alg)),
            other => unreachable!("no leaf fixture for {other}"),
        }
    }

    /// RSA-4096 leaf keys generated beforehand, standing in for the server's key pool.
    fn rsa4096_pool(&self) -> &[LeafKey] {
        self.rsa4096_pool.get_or_init(|| {
            (0..POOLED_KEYS)
                .map(|_| generate(KeyAlgorithm::Rsa4096))
                .collect()
        })
    }
}

fn generate(alg: KeyAlgorithm) -> LeafKey {
    alg.generate().expect("leaf key generation")
}

/// A leaf request for `USERNAME`, valid for `MONTHS` months from now, with a fresh serial.
fn leaf_request() -> LeafRequest<'static> {
    let (not_before, not_after) = leaf_validity(Utc::now(), MONTHS).expect("leaf validity");
    LeafRequest {
        username: USERNAME,
        serial: random_serial(),
        not_before,
        not_after,
    }
}

/// What the server does per request once it holds a leaf key: validity window, serial,
/// signature and the PEM response body.
fn issue_and_encode(ca: &ManagedCa, key: &LeafKey) -> Zeroizing<String> {
    let request = leaf_request();
    let issued = ca.issue(&request, key).expect("issuing a leaf");
    response_pem(&issued.der, key)
}

/// Tunes `group` for one `keygen` benchmark: RSA keys take long enough that the default 100
/// samples in 5 s cannot be met, so those get ten flat samples over a longer measurement.
fn tune_keygen(group: &mut BenchmarkGroup<'_, WallTime>, alg: KeyAlgorithm) {
    let (mode, samples, warm_up, measurement) = match alg {
        KeyAlgorithm::Rsa4096 => (SamplingMode::Flat, 10, 2, 30),
        KeyAlgorithm::Rsa2048 => (SamplingMode::Flat, 10, 2, 10),
        KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => (SamplingMode::Auto, 100, 3, 5),
    };
    group
        .sampling_mode(mode)
        .sample_size(samples)
        .warm_up_time(Duration::from_secs(warm_up))
        .measurement_time(Duration::from_secs(measurement));
}

/// `keygen/<alg>`: one leaf key of each algorithm.
fn keygen(c: &mut Criterion) {
    let mut group = c.benchmark_group("keygen");
    for alg in KeyAlgorithm::ALL {
        tune_keygen(&mut group, alg);
        group.bench_function(BenchmarkId::from_parameter(alg.as_str()), |b| {
            b.iter(|| black_box(alg).generate().expect("leaf key generation"));
        });
    }
    group.finish();
}

/// `sign/<ca alg>-ca/<leaf alg>`: `ManagedCa::issue` with a ready key and request.
fn sign(c: &mut Criterion, fixtures: &Fixtures) {
    let pairs = [
        (KeyAlgorithm::Rsa4096, KeyAlgorithm::EcdsaP256),
        (KeyAlgorithm::Rsa4096, KeyAlgorithm::Rsa4096),
        (KeyAlgorithm::EcdsaP256, KeyAlgorithm::EcdsaP256),
    ];
    let mut group = c.benchmark_group("sign");
    for (ca_alg, leaf_alg) in pairs {
        let id = BenchmarkId::new(format!("{}-ca", ca_alg.as_str()), leaf_alg.as_str());
        group.bench_function(id, |b| {
            let (ca, key) = (fixtures.ca(ca_alg), fixtures.leaf(leaf_alg));
            let request = leaf_request();
            b.iter(|| {
                ca.issue(black_box(&request), black_box(key))
                    .expect("issuing a leaf")
            });
        });
    }
    group.finish();
}

/// `pem/response/<leaf alg>`: the response body for an issued certificate and its key.
fn pem(c: &mut Criterion, fixtures: &Fixtures) {
    let mut group = c.benchmark_group("pem/response");
    for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa4096] {
        group.bench_function(BenchmarkId::from_parameter(alg.as_str()), |b| {
            let key = fixtures.leaf(alg);
            let issued = fixtures
                .ca(alg)
                .issue(&leaf_request(), key)
                .expect("issuing a leaf");
            b.iter(|| response_pem(black_box(&issued.der), black_box(key)));
        });
    }
    group.finish();
}

/// `issue/full/ecdsa-p256` and `issue/full_pooled/rsa-4096`: one whole certificate request.
fn issue(c: &mut Criterion, fixtures: &Fixtures) {
    let mut group = c.benchmark_group("issue");
    group.bench_function(
        BenchmarkId::new("full", KeyAlgorithm::EcdsaP256.as_str()),
        |b| {
            let ca = fixtures.ca(KeyAlgorithm::EcdsaP256);
            b.iter(|| {
                let key = generate(black_box(KeyAlgorithm::EcdsaP256));
                issue_and_encode(black_box(ca), &key)
            });
        },
    );
    group.bench_function(
        BenchmarkId::new("full_pooled", KeyAlgorithm::Rsa4096.as_str()),
        |b| {
            let ca = fixtures.ca(KeyAlgorithm::Rsa4096);
            let mut pool = fixtures.rsa4096_pool().iter().cycle();
            b.iter(|| {
                let key = pool.next().expect("the pool cycles forever");
                issue_and_encode(black_box(ca), black_box(key))
            });
        },
    );
    group.finish();
}

fn certificate_path(c: &mut Criterion) {
    let fixtures = Fixtures::default();
    keygen(c);
    sign(c, &fixtures);
    pem(c, &fixtures);
    issue(c, &fixtures);
}

criterion::criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = certificate_path
}
criterion::criterion_main!(benches);
