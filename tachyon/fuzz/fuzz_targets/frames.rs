//! Fuzzes the TCP frame decoder: the first byte sets the frame limit, the rest is a
//! stream of frames from a hostile peer. Accepted frames must re-encode to the same bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tachyon::__fuzz::frames(data);
});
