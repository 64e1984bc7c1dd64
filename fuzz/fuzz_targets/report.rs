//! Fuzzes report.html from a decoded summary; see `pov::testing::check_report`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pov::testing::check_report(data));
