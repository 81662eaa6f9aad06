//! What the benchmark binaries share: CPU pinning, percentiles and medians, and server
//! processes pinned with `taskset` that announce themselves with a `ready [PORT]` line.
//!
//! Every function here panics on failure: a benchmark that cannot set itself up has
//! nothing to report.
#![allow(clippy::cast_precision_loss, clippy::cast_sign_loss, clippy::missing_panics_doc)]

use std::io::BufRead;
use std::process::{Child, Command, Stdio};

/// Pins the calling thread to `cpu`.
///
/// # Panics
/// If the CPU cannot be chosen (a benchmark without its placement is meaningless).
pub fn pin(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).expect("sched_setaffinity");
}

/// The `q` quantile (nearest rank) of samples in nanoseconds, in microseconds. Sorts `v`.
///
/// # Panics
/// If `v` is empty.
pub fn pct(v: &mut [u64], q: f64) -> f64 {
    v.sort_unstable();
    let i = (((v.len() as f64) * q).ceil() as usize).clamp(1, v.len()) - 1;
    v[i] as f64 / 1000.0
}

/// The median of per-round figures. Sorts `v`.
///
/// # Panics
/// If `v` is empty.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A server process pinned to a CPU through `taskset` (so every thread it starts stays
/// there), killed on drop. It prints `ready` or `ready PORT` once it serves.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// The port it announced, if any.
    pub port: Option<u16>,
}

impl Server {
    /// Runs this benchmark binary as `server ARGS...` on `cpu`.
    pub fn this_exe(cpu: usize, args: &[&str]) -> Self {
        let exe = std::env::current_exe().expect("current exe");
        let mut cmd = Command::new(exe);
        cmd.arg("server").args(args);
        Self::pinned(cpu, &cmd)
    }

    /// Runs `program` with its arguments on `cpu`.
    pub fn pinned(cpu: usize, program: &Command) -> Self {
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", &cpu.to_string()]).arg(program.get_program()).args(program.get_args());
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn a server (taskset)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the server's ready line");
        let rest = line
            .trim()
            .strip_prefix("ready")
            .unwrap_or_else(|| panic!("unexpected first line from the server: {line:?}"));
        let port = rest.trim().parse().ok();
        Self { child, port }
    }

    /// The port it announced.
    ///
    /// # Panics
    /// If it announced none.
    pub fn port(&self) -> u16 {
        self.port.expect("the server announced no port")
    }

    /// CPU time the server's threads used so far, in nanoseconds.
    pub fn cpu_ns(&self) -> u64 {
        let dir = format!("/proc/{}/task", self.child.id());
        std::fs::read_dir(dir)
            .expect("the server's tasks")
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
            .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The flags the side-by-side benchmarks share: `--rounds R --seconds S --samples N`.
#[derive(Debug, Clone, Copy)]
pub struct RoundArgs {
    /// Rounds; medians are printed.
    pub rounds: usize,
    /// Seconds of each throughput run.
    pub seconds: f64,
    /// Round trips timed per latency run.
    pub samples: usize,
}

impl RoundArgs {
    /// Parses `args` (the command line without the program), starting from `defaults`.
    /// Prints usage and exits 2 on `--help` or a bad flag.
    pub fn parse(args: &[String], defaults: Self) -> Self {
        let usage = |why: &str| -> ! {
            eprintln!("{why}\nflags: --rounds R (default {}) --seconds S (default {}) --samples N (default {})",
                defaults.rounds, defaults.seconds, defaults.samples);
            std::process::exit(2)
        };
        let mut a = defaults;
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            if flag == "--help" || flag == "-h" {
                usage("side-by-side benchmark; CPU placement is printed with the results");
            }
            let Some(v) = it.next() else { usage(&format!("{flag} needs a value")) };
            let bad = format!("{flag} {v}: not a number");
            match flag.as_str() {
                "--rounds" => a.rounds = v.parse().unwrap_or_else(|_| usage(&bad)),
                "--seconds" => a.seconds = v.parse().unwrap_or_else(|_| usage(&bad)),
                "--samples" => a.samples = v.parse().unwrap_or_else(|_| usage(&bad)),
                other => usage(&format!("unknown flag {other}")),
            }
        }
        a
    }
}
