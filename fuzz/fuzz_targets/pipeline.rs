//! Fuzzes the whole pipeline from a capture file (default caps) to transactions, the user stage and the replays; see `pov::testing::check_pipeline`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pov::testing::check_pipeline(data));
