//! Fuzzes decoding + reassembly: the input is a sequence of frames of
//! several link types (see `pov_capture::testing::check_frames`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pov_capture::testing::check_frames(data);
});
