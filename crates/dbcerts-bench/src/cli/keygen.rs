//! `dbcerts-bench keygen`: the hardware's key-generation rate, the limit that RSA-4096 issuance
//! (W2) is compared against. Generates keys with the server's own code
//! (`dbcerts_ca::KeyAlgorithm::generate`, aws-lc) on a number of threads and reports keys per
//! second and the per-key latency.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use dbcerts_ca::KeyAlgorithm;
use serde::{Deserialize, Serialize};

use crate::machine::Machine;
use crate::stats::{LatencyMs, new_histogram, record};

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// rsa-4096, rsa-2048, ecdsa-p256 or ecdsa-p384.
    #[arg(long, default_value = "rsa-4096")]
    pub algorithm: String,
    /// Generating threads (the server's cores: 2 on the benchmark machine).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Keys to generate in all.
    #[arg(long, default_value_t = 40)]
    pub keys: u64,
    /// Where to write the JSON result.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// What a keygen run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeygenResult {
    pub algorithm: String,
    pub threads: usize,
    pub keys: u64,
    pub duration_s: f64,
    pub keys_per_second: f64,
    pub latency_ms: LatencyMs,
    pub started_at: String,
    pub machine: Machine,
}

/// Generates `keys` keys of `algorithm` on `threads` threads.
pub fn measure(algorithm: KeyAlgorithm, threads: usize, keys: u64) -> anyhow::Result<KeygenResult> {
    anyhow::ensure!(
        threads > 0 && keys > 0,
        "--threads and --keys must be positive"
    );
    let next = AtomicU64::new(0);
    let histogram = Mutex::new(new_histogram());
    let started_at = chrono::Utc::now().to_rfc3339();
    let started = Instant::now();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    let mut own = new_histogram();
                    while next.fetch_add(1, Ordering::Relaxed) < keys {
                        let one = Instant::now();
                        let key = algorithm.generate().context("generating a key")?;
                        record(&mut own, one.elapsed());
                        drop(key);
                    }
                    histogram
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .add(own)
                        .context("merging histograms")?;
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a keygen thread panicked"))??;
        }
        Ok(())
    })?;
    let duration_s = started.elapsed().as_secs_f64();
    let histogram = histogram
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Ok(KeygenResult {
        algorithm: algorithm.as_str().to_owned(),
        threads,
        keys,
        duration_s,
        keys_per_second: keys as f64 / duration_s,
        latency_ms: LatencyMs::from_histogram(&histogram),
        started_at,
        machine: Machine::detect(),
    })
}

pub fn main(args: KeygenArgs) -> anyhow::Result<()> {
    let algorithm: KeyAlgorithm = args
        .algorithm
        .parse()
        .map_err(|e| anyhow::anyhow!("--algorithm: {e}"))?;
    let result = measure(algorithm, args.threads, args.keys)?;
    println!(
        "keygen {}: {} keys on {} threads in {:.2} s = {:.2} keys/s (p50 {:.1} ms, max {:.1} ms)",
        result.algorithm,
        result.keys,
        result.threads,
        result.duration_s,
        result.keys_per_second,
        result.latency_ms.p50,
        result.latency_ms.max
    );
    if let Some(out) = args.out {
        std::fs::write(&out, serde_json::to_vec_pretty(&result)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_every_key_on_every_thread() {
        let r = measure(KeyAlgorithm::EcdsaP256, 2, 25).unwrap();
        assert_eq!(
            (r.algorithm.as_str(), r.threads, r.keys),
            ("ecdsa-p256", 2, 25)
        );
        assert!(r.duration_s > 0.0 && r.keys_per_second > 0.0);
        assert!(r.latency_ms.p50 <= r.latency_ms.max);
        assert!(measure(KeyAlgorithm::EcdsaP256, 0, 1).is_err());
    }
}
