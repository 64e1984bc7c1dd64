//! Fuzzes CSV, JSON, JSON lines and table output of decoded records; see `pov::testing::check_csv`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pov::testing::check_csv(data));
