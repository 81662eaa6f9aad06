//! Fuzzes the fast-mode consumer: a hostile producer forges commit words and headers
//! anywhere in the ring. The consumer must end in an error and the FatalError state, or
//! in a clean drain, and never panic or read out of bounds.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tachyon::__fuzz::consumer_fast(data);
});
