#![no_main]
//! Fuzz target `digest_header`: the properties live in `src/digest_header.rs`, shared with the crate's proptest suite.

libfuzzer_sys::fuzz_target!(|data: &[u8]| dbcerts_fuzz::digest_header::check(data));
