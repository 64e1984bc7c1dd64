//! Fuzzes a script of stream events (chunks up to megabytes) through HTTP, the user stage and the replays; see `pov::testing::check_streams`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pov::testing::check_streams(data));
