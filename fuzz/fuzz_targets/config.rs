//! Fuzzes pov.toml parsing, and a user-stage run under what parsed; see `pov::testing::check_config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pov::testing::check_config(data));
