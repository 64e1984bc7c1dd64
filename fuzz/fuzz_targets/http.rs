//! Fuzzes the HTTP layer with a script of stream events on several
//! connections (chunks up to megabytes, gaps, closes, time passing) at
//! default or small caps; see `pov_capture::testing::check_http`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pov_capture::testing::check_http(data));
