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
#[derive(Debug, Clone, Copy, clap::Parser)]
pub struct RoundArgs {
    /// Rounds; medians are printed.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Seconds of each throughput run.
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
    /// Round trips timed per latency run.
    #[arg(long, default_value_t = 20_000)]
    pub samples: usize,
}

impl RoundArgs {
    /// Parses the command line (`argv`, program name first), with `about` for `--help`:
    /// usage and exit 0 on `--help`, a message and exit 2 on a bad flag.
    pub fn parse(argv: &[String], about: &'static str) -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Self::command().about(about).get_matches_from(argv);
        Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}
