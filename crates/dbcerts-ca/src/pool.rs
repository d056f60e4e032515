//! A bounded, memory-only pool of pre-generated single-use leaf keys.
//!
//! RSA-4096 generation costs most of a second of one core, with a long tail. Background worker
//! threads keep up to `capacity` keys ready so that certificate creation does not wait on key
//! generation while the pool has keys. Keys never leave memory and each is handed out once.
//! Workers are plain OS threads, so key generation never occupies the async runtime's threads.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::{CaError, KeyAlgorithm, LeafKey};

struct State {
    keys: VecDeque<LeafKey>,
    stopping: bool,
}

struct Shared {
    algorithm: KeyAlgorithm,
    capacity: usize,
    state: Mutex<State>,
    wake_workers: Condvar,
    generated: AtomicU64,
    served_from_pool: AtomicU64,
    generated_inline: AtomicU64,
}

/// Counters for operators and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub depth: usize,
    pub capacity: usize,
    pub generated_in_background: u64,
    pub served_from_pool: u64,
    pub generated_inline: u64,
}

/// The key pool. Dropping the last handle does not stop the workers; call [`KeyPool::shutdown`].
pub struct KeyPool {
    shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl KeyPool {
    /// Starts `workers` background threads that keep `capacity` keys of `algorithm` ready.
    /// A capacity of zero disables the pool: every key is generated on demand.
    pub fn start(algorithm: KeyAlgorithm, capacity: usize, workers: usize) -> Arc<KeyPool> {
        let shared = Arc::new(Shared {
            algorithm,
            capacity,
            state: Mutex::new(State {
                keys: VecDeque::with_capacity(capacity),
                stopping: false,
            }),
            wake_workers: Condvar::new(),
            generated: AtomicU64::new(0),
            served_from_pool: AtomicU64::new(0),
            generated_inline: AtomicU64::new(0),
        });
        let handles = if capacity == 0 {
            Vec::new()
        } else {
            (0..workers.max(1))
                .map(|i| {
                    let shared = Arc::clone(&shared);
                    std::thread::Builder::new()
                        .name(format!("dbcerts-keypool-{i}"))
                        .spawn(move || worker(&shared))
                        .expect("spawning a key-pool thread")
                })
                .collect()
        };
        Arc::new(KeyPool {
            shared,
            workers: Mutex::new(handles),
        })
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        self.shared.algorithm
    }

    /// Takes a ready key, if there is one, and wakes a worker to replace it.
    pub fn try_take(&self) -> Option<LeafKey> {
        let key = lock(&self.shared.state).keys.pop_front();
        if key.is_some() {
            self.shared.served_from_pool.fetch_add(1, Ordering::Relaxed);
            self.shared.wake_workers.notify_one();
        }
        key
    }

    /// Takes a ready key or, when the pool is empty, generates one on the calling thread.
    /// Call it from a blocking context (for example `spawn_blocking`).
    pub fn take_or_generate(&self) -> Result<LeafKey, CaError> {
        if let Some(key) = self.try_take() {
            return Ok(key);
        }
        self.shared.generated_inline.fetch_add(1, Ordering::Relaxed);
        self.shared.algorithm.generate()
    }

    pub fn stats(&self) -> PoolStats {
        PoolStats {
            depth: lock(&self.shared.state).keys.len(),
            capacity: self.shared.capacity,
            generated_in_background: self.shared.generated.load(Ordering::Relaxed),
            served_from_pool: self.shared.served_from_pool.load(Ordering::Relaxed),
            generated_inline: self.shared.generated_inline.load(Ordering::Relaxed),
        }
    }

    /// Stops the workers, waits for them (at most one key generation each), and drops every
    /// pooled key.
    pub fn shutdown(&self) {
        {
            let mut state = lock(&self.shared.state);
            state.stopping = true;
            state.keys.clear();
        }
        self.shared.wake_workers.notify_all();
        let handles: Vec<_> = std::mem::take(&mut *lock(&self.workers));
        for handle in handles {
            let _ = handle.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn worker(shared: &Shared) {
    loop {
        {
            let mut state = lock(&shared.state);
            while !state.stopping && state.keys.len() >= shared.capacity {
                state = shared
                    .wake_workers
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            if state.stopping {
                return;
            }
        }
        match shared.algorithm.generate() {
            Ok(key) => {
                let mut state = lock(&shared.state);
                if state.stopping {
                    return;
                }
                if state.keys.len() < shared.capacity {
                    state.keys.push_back(key);
                    shared.generated.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "key pool generation failed; retrying in 1s");
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn wait_for_depth(pool: &KeyPool, depth: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while pool.stats().depth < depth {
            assert!(
                Instant::now() < deadline,
                "pool did not fill: {:?}",
                pool.stats()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn fills_hands_out_each_key_once_and_refills() {
        let pool = KeyPool::start(KeyAlgorithm::EcdsaP256, 4, 2);
        wait_for_depth(&pool, 4);
        let a = pool.try_take().unwrap();
        let b = pool.try_take().unwrap();
        assert_ne!(a.pair.serialize_der(), b.pair.serialize_der());
        wait_for_depth(&pool, 4);
        let stats = pool.stats();
        assert_eq!(stats.served_from_pool, 2);
        assert!(stats.generated_in_background >= 6);
        assert!(stats.depth <= stats.capacity);
        pool.shutdown();
        assert_eq!(pool.stats().depth, 0);
        assert!(pool.try_take().is_none());
    }

    #[test]
    fn empty_pool_generates_inline() {
        let pool = KeyPool::start(KeyAlgorithm::EcdsaP256, 0, 1);
        let key = pool.take_or_generate().unwrap();
        assert_eq!(key.algorithm(), KeyAlgorithm::EcdsaP256);
        assert_eq!(pool.stats().generated_inline, 1);
        pool.shutdown();
    }
}
