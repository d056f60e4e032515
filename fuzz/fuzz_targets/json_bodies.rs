#![no_main]
//! Fuzz target `json_bodies`: the properties live in `src/json_bodies.rs`, shared with the crate's proptest suite.

libfuzzer_sys::fuzz_target!(|data: &[u8]| dbcerts_fuzz::json_bodies::check(data));
