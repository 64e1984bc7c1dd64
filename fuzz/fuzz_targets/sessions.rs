//! Fuzzes a decoded sequence of transactions through identity, sessions, page views and classification; see `pov::testing::check_sessions`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pov::testing::check_sessions(data));
