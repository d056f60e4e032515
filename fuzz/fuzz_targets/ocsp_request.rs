#![no_main]
//! Fuzz target `ocsp_request`: the properties live in `src/ocsp_request.rs`, shared with the crate's proptest suite.

libfuzzer_sys::fuzz_target!(|data: &[u8]| dbcerts_fuzz::ocsp_request::check(data));
