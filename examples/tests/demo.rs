//! The demo `make demo` runs, run as a test: two processes, the generated client of
//! schemas/quote.tachyon, `verify`, the schema's error code, an unknown msg_type.

#[test]
fn rpc_demo_runs_and_reports() {
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_rpc_demo")).output().expect("run rpc_demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "rpc_demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("client connected (liveness link: true)"), "{stdout}");
    assert!(
        stdout.contains("client.verify()                    -> the server serves quote.Quotes"),
        "{stdout}"
    );
    assert!(stdout.contains("-> bid 311.99 ask 312.01"), "{stdout}");
    assert!(
        stdout.contains("RpcError: remote call to msg_type 1 failed (application error, code 100)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("RpcError: remote call to msg_type 77 failed (unknown msg_type, code 1)"),
        "{stdout}"
    );
    assert!(stdout.contains("client.echo, 32 raw bytes"), "{stdout}");
}
