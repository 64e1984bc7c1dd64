//! Fuzzes the HTTP layer: the input is a script of stream events (data,
//! gaps, half-closes, a close) for one connection; see
//! `pov_capture::testing::check_http`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pov_capture::testing::check_http(data);
});
