//! Fuzzes reading + decoding + reassembly: the input is a capture file.
//! Seed with the corpus: `cargo +nightly fuzz run capture ../../shared/corpus/pcaps`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pov_capture::testing::check_capture_bytes(data);
});
