//! `tachyon doctor` run as users run it: on this machine, and in a process whose seccomp
//! filter forbids io_uring (where it must report the epoll fallback and still pass).

use std::os::unix::process::CommandExt;
use std::process::Command;

fn doctor_json(cmd: &mut Command) -> (i32, serde_json::Value) {
    let out = cmd.output().expect("run tachyon doctor");
    let code = out.status.code().expect("exit code");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (code, v)
}

fn check<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {v}"))
}

#[test]
fn doctor_on_this_machine_passes_and_reports_every_check() {
    let (code, v) =
        doctor_json(Command::new(env!("CARGO_BIN_EXE_tachyon")).args(["doctor", "--json"]));
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["ok"], true);
    for name in [
        "memfd",
        "shared_futex",
        "so_peercred",
        "numa",
        "open_files",
        "memlock",
        "seccomp",
        "io_uring",
        "io_uring_disabled",
        "io_uring_op",
        "tcp_backend",
    ] {
        let c = check(&v, name);
        assert!(c["why"].as_str().is_some_and(|s| !s.is_empty()), "{c}");
        assert!(c["found"].as_str().is_some_and(|s| !s.is_empty()), "{c}");
    }
    for required in ["memfd", "shared_futex", "so_peercred"] {
        assert_eq!(check(&v, required)["level"], "ok", "{v:#}");
    }
    // The table says the same for people.
    let out = Command::new(env!("CARGO_BIN_EXE_tachyon")).arg("doctor").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("memfd") && text.contains("Tachyon runs here"), "{text}");
    // --help explains, and a wrong command is a usage error, not a panic.
    let help = Command::new(env!("CARGO_BIN_EXE_tachyon")).arg("--help").output().unwrap();
    assert!(help.status.success() && String::from_utf8_lossy(&help.stdout).contains("doctor"));
    let bad = Command::new(env!("CARGO_BIN_EXE_tachyon")).arg("nonsense").output().unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", String::from_utf8_lossy(&bad.stderr));
}

/// A seccomp filter that fails `io_uring_setup` with EPERM, as Docker's default profile
/// does, installed in the child between fork and exec.
fn forbid_io_uring(cmd: &mut Command) -> &mut Command {
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JEQ_K: u16 = 0x15;
    const BPF_RET_K: u16 = 0x06;
    const RET_ERRNO: u32 = 0x0005_0000;
    const RET_ALLOW: u32 = 0x7fff_0000;
    let nr = u32::try_from(libc::SYS_io_uring_setup).unwrap();
    let filter = [
        // seccomp_data.nr is at offset 0 (this test runs on x86_64 only).
        libc::sock_filter { code: BPF_LD_W_ABS, jt: 0, jf: 0, k: 0 },
        libc::sock_filter { code: BPF_JEQ_K, jt: 0, jf: 1, k: nr },
        libc::sock_filter { code: BPF_RET_K, jt: 0, jf: 0, k: RET_ERRNO | libc::EPERM as u32 },
        libc::sock_filter { code: BPF_RET_K, jt: 0, jf: 0, k: RET_ALLOW },
    ];
    // SAFETY: the closure runs in the forked child before exec and only makes two
    // prctl system calls (async-signal-safe) on data that lives in this stack frame's
    // copy in the child.
    unsafe {
        cmd.pre_exec(move || {
            let prog =
                libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr().cast_mut() };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

#[test]
#[cfg(target_arch = "x86_64")]
fn with_io_uring_forbidden_doctor_reports_the_epoll_fallback_and_still_passes() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tachyon"));
    cmd.args(["doctor", "--json"]);
    let (code, v) = doctor_json(forbid_io_uring(&mut cmd));
    assert_eq!(code, 0, "io_uring is optional: {v:#}");
    let uring = check(&v, "io_uring");
    assert_eq!(uring["level"], "degraded", "{uring}");
    assert!(uring["found"].as_str().unwrap().contains("forbidden"), "{uring}");
    assert!(uring["fix"].as_str().is_some(), "{uring}");
    assert_eq!(check(&v, "tcp_backend")["found"], "epoll", "{v:#}");
    assert_eq!(check(&v, "seccomp")["level"], "degraded", "{v:#}");
    assert_eq!(check(&v, "memfd")["level"], "ok");
}
