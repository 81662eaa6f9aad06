//! Fuzzes a TCP server connection: a hostile client's bytes, cut into reads at arbitrary
//! points. The connection answers or closes with a goaway, and only sends valid frames.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tachyon::__fuzz::tcp_conn(data);
});
