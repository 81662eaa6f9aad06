//! Fuzzes `tachyon::__fuzz::arena_attach`: see its doc comment for what the bytes play.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tachyon::__fuzz::arena_attach(data);
});
