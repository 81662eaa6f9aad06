//! Fuzzes the consumer side of the ring: arbitrary bytes play a hostile producer that
//! sets the head, the tail and any message headers. The consumer must end in an error
//! and the FatalError state, or in a clean drain, and never panic or read out of bounds.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tachyon::__fuzz::fuzz_consumer(data);
});
