//! Criterion benchmarks of CRL generation: what `dbcerts-ca` does to publish one issuer's CRL.
//!
//! Benchmark ids (`group/function/parameter`):
//!
//! - `crl/sign/<ca alg>-ca/<entries>`: [`ManagedCa::sign_crl`] over `entries` revoked serials
//!   (random 63-bit serials, reasons cycling through the five dbcerts records), for a P-256 CA
//!   and an RSA-4096 CA (the server's default), with 1,000 and 100,000 entries. This is the whole
//!   of the PKI work of one regeneration: sorting, encoding every entry, one signature.
//! - `crl/pem/<entries>`: [`crl_pem`], the PEM form `GET .../crl` serves, of the 100,000-entry
//!   CRL.
//!
//! Running:
//!
//! ```text
//! cargo bench -p dbcerts-ca --bench crl            # everything, about a minute
//! cargo bench -p dbcerts-ca --bench crl -- --test  # each benchmark once
//! ```

use std::hint::black_box;
use std::time::Duration;

use chrono::Utc;
use criterion::{BenchmarkId, Criterion, SamplingMode};
use dbcerts_ca::{
    CrlEntry, CrlParams, KeyAlgorithm, ManagedCa, ManagedCaParams, crl_pem, random_serial,
};

const GROUP_ID: &str = "5efda6aea3f2ed2e7dd6ce05";
/// The RFC 5280 reason codes dbcerts records.
const REASONS: [u8; 5] = [0, 1, 3, 4, 5];

fn entries(n: usize) -> Vec<CrlEntry> {
    let now = Utc::now();
    (0..n)
        .map(|i| CrlEntry {
            serial: random_serial(),
            revoked_at: now - chrono::Duration::seconds(i as i64),
            reason: REASONS[i % REASONS.len()],
        })
        .collect()
}

fn params() -> CrlParams {
    let now = Utc::now();
    CrlParams {
        number: 123_456,
        this_update: now,
        next_update: now + chrono::Duration::days(7),
    }
}

fn crl(c: &mut Criterion) {
    let mut group = c.benchmark_group("crl");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(10));
    for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa4096] {
        let ca = ManagedCa::create(GROUP_ID, &ManagedCaParams::default(), alg, Utc::now())
            .expect("creating the CA fixture");
        for n in [1_000, 100_000] {
            let list = entries(n);
            let id = BenchmarkId::new(format!("sign/{}-ca", alg.as_str()), n);
            group.bench_function(id, |b| {
                b.iter(|| {
                    ca.sign_crl(black_box(&params()), black_box(&list))
                        .expect("signing the CRL")
                });
            });
        }
    }
    let ca = ManagedCa::create(
        GROUP_ID,
        &ManagedCaParams::default(),
        KeyAlgorithm::EcdsaP256,
        Utc::now(),
    )
    .expect("creating the CA fixture");
    let der = ca
        .sign_crl(&params(), &entries(100_000))
        .expect("signing the CRL");
    group.bench_function(BenchmarkId::new("pem", 100_000), |b| {
        b.iter(|| crl_pem(black_box(&der)))
    });
    group.finish();
}

criterion::criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = crl
}
criterion::criterion_main!(benches);
