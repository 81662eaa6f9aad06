//! `tachyon call` against the test service served over TCP and over shared memory:
//! raw and typed calls, the decoded error reply, and bad input.

use std::process::{Command, Output};
use std::sync::Arc;

use tachyon::net::{TcpServer, TcpServerOptions};
use tachyon::rpc::{RpcServer, ServerOptions};

fn tachyon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tachyon")).args(args).output().expect("run tachyon")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_owned()
}

fn calls_against(addr: &str) {
    // Raw: text in, text out; hex in, hex out.
    let o = tachyon(&["call", addr, "1", "hello there"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hello there");
    let o = tachyon(&["call", addr, "1", "--hex", "00 ff 10", "--out", "hex"]);
    assert_eq!(stdout(&o), "00ff10", "{}", stderr(&o));
    // Typed: JSON in (as MessagePack), the MessagePack reply printed as JSON.
    let o = tachyon(&["call", addr, "2", "--json", r#"{"a": 40, "b": 2}"#]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["sum"], 42);
    // The 0xFFFF error reply, decoded, exit 3.
    let o = tachyon(&["call", addr, "3", "--json", r#""nope""#]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("nope") && stderr(&o).contains("code 2"), "{}", stderr(&o));
    let o = tachyon(&["call", addr, "999"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("unknown msg_type"), "{}", stderr(&o));
    // A typed handler given bytes it cannot decode: BAD_REQUEST, still exit 3.
    let o = tachyon(&["call", addr, "2", "not msgpack"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
}

#[test]
fn call_over_tcp_raw_typed_and_error_replies() {
    let opts = TcpServerOptions::default().on_error(|_| {});
    let h = TcpServer::bind("tcp://127.0.0.1:0", opts)
        .unwrap()
        .spawn(Arc::new(tachyon_tests::service::dispatcher()))
        .unwrap();
    calls_against(&h.address());
}

#[test]
fn call_over_shared_memory_raw_typed_and_error_replies() {
    let path = tachyon_tests::socket_path("cli-call");
    let _h = RpcServer::bind(&path, ServerOptions::default())
        .unwrap()
        .spawn(Arc::new(tachyon_tests::service::dispatcher()));
    calls_against(&path);
}

#[test]
fn bad_input_is_a_clear_usage_error() {
    let o = tachyon(&["call", "tcp://127.0.0.1:1", "1", "x", "--timeout-ms", "500"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!stderr(&o).is_empty());
    let o = tachyon(&["call", "/tmp/no-such-tachyon.sock", "1"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let o = tachyon(&["call", "tcp://127.0.0.1:1", "1", "--hex", "abc"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("even number"), "{}", stderr(&o));
    let o = tachyon(&["call", "tcp://127.0.0.1:1", "65535"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("reserved"), "{}", stderr(&o));
    let o = tachyon(&["call", "tcp://127.0.0.1:1", "70000"]);
    assert_eq!(o.status.code(), Some(2), "clap refuses a msg_type over u16");
}
