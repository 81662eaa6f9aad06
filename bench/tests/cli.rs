//! The benchmark binaries' command lines: `--help` prints usage and exits 0, a bad flag
//! says what is wrong and exits 2 (never a panic).

use std::process::Command;

#[test]
fn help_and_bad_flags_are_answered_without_a_panic() {
    for bin in [
        env!("CARGO_BIN_EXE_tachyon-bench"),
        env!("CARGO_BIN_EXE_tachyon-tcp-bench"),
        env!("CARGO_BIN_EXE_tachyon-async-bench"),
        env!("CARGO_BIN_EXE_tachyon-tls-bench"),
        env!("CARGO_BIN_EXE_tachyon-channel-bench"),
    ] {
        let out = Command::new(bin).arg("--help").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && text.contains("Usage"), "{bin}: {text}");
        assert!(!text.contains("panicked"), "{bin}: {text}");
        let out = Command::new(bin).arg("--bogus").output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bin}: {err}");
        assert!(err.contains("--bogus") && !err.contains("panicked"), "{bin}: {err}");
    }
}
