//! Fuzzes identity extraction from a client certificate: arbitrary DER in, a
//! `PeerIdentity` out without a panic, and a reported common name only when it is the
//! subject's one CN attribute.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tachyon::__fuzz::peer_identity(data);
});
