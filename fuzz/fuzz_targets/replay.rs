//! Fuzzes the replay rewriter, HAR and the HTML replay on a decoded page, style sheet and resource; see `pov::testing::check_replay`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pov::testing::check_replay(data));
