#![no_main]
//! Fuzz target `customer_ca_bundle`: the properties live in `src/customer_ca_bundle.rs`, shared with the crate's proptest suite.

libfuzzer_sys::fuzz_target!(|data: &[u8]| dbcerts_fuzz::customer_ca_bundle::check(data));
