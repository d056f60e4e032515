//! Conformance checks of the store as a whole: it answers pings, and the migrations each
//! backend ships.

use super::*;

/// How many migrations the crate ships for `backend` (every one must be applied, once).
pub fn migration_count(backend: &str) -> i64 {
    migration_versions(backend).len() as i64
}

/// The versions of the migrations the crate ships for `backend`, in order (the numbers are
/// fixed per feature, so a branch may ship 9 without 8).
pub fn migration_versions(backend: &str) -> Vec<i64> {
    let dir = format!("{}/migrations/{backend}", env!("CARGO_MANIFEST_DIR"));
    let mut versions: Vec<i64> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            let (number, rest) = name.split_once('_')?;
            rest.ends_with(".sql").then(|| number.parse().unwrap())
        })
        .collect();
    versions.sort_unstable();
    versions
}

/// A reachable store answers `ping`, repeatedly.
pub async fn ping_answers(store: &dyn Store) {
    for _ in 0..3 {
        store.ping().await.expect("ping");
    }
}
