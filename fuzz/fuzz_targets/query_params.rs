#![no_main]
//! Fuzz target `query_params`: the properties live in `src/query_params.rs`, shared with the crate's proptest suite.

libfuzzer_sys::fuzz_target!(|data: &[u8]| dbcerts_fuzz::query_params::check(data));
