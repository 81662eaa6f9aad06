//! Compile errors of `#[tachyon_rpc]` and `dispatcher!`, with their spans
//! (`tests/ui/<what-is-wrong>.rs` and the expected `.stderr`).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
