//! Fuzzes `tachyon::__fuzz::channel_file`: see its doc comment for what the bytes play.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tachyon::__fuzz::channel_file(data);
});
