//! `tachyon`: Tachyon's command-line tool.
//!
//! - `tachyon doctor` checks what this machine lets Tachyon use (shared memory, futexes,
//!   peer credentials, io_uring and its operations, limits, seccomp) by trying each, and
//!   says why each matters and how to fix what is missing. The exit code is 1 when
//!   something Tachyon needs is missing.
//! - `tachyon inspect [PID]` lists the Tachyon arenas a process holds (every process
//!   of this user without a PID): kind, capacity, state, fill, head and tail, whether
//!   the consumer sleeps, the ring's mode and the peer. It only reads.
//! - `tachyon top [PID]` refreshes that view: bytes per second through each ring, its
//!   fill and its consumer, until Ctrl-C (or `--count` refreshes).
//! - `tachyon bench [--plot FILE.svg]` measures round trips (against the hardware floor)
//!   and streaming on this machine, and draws the latency percentiles.
//! - `tachyon call ADDR MSG_TYPE [PAYLOAD]` makes one call to any Tachyon server, over
//!   TCP or shared memory, and prints the reply or the decoded error reply.
//!
//! The same command runs as `python -m tachyon` and `npx tachyon`: the Python and Node
//! packages call [`run`] in-process.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod call;
mod doctor;
mod inspect;
mod top;

use std::ffi::OsString;
use std::io::Write as _;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "tachyon",
    version,
    about = "Tachyon's command-line tool",
    long_about = "Tachyon's command-line tool: checks what this machine supports for \
                  Tachyon's shared-memory rings and its TCP transport, and calls servers."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Checks what this machine supports, why each thing matters, and how to fix what is
    /// missing. Exits 1 when something Tachyon cannot run without is missing.
    Doctor {
        /// Prints JSON: {"ok": bool, "checks": [{name, level, found, why, fix}]}.
        #[arg(long)]
        json: bool,
    },
    /// Lists the Tachyon arenas PID holds (every process of this user without one):
    /// kind, capacity, state, fill, head/tail, consumer sleeping, mode, peers. Read-only:
    /// it never writes to an arena.
    Inspect {
        /// The process to look at.
        pid: Option<i32>,
        /// Prints JSON: a list of {pid, fd, inode, kind, capacity, state, head, tail,
        /// fill, consumer, mode, peers}.
        #[arg(long)]
        json: bool,
    },
    /// Shows each ring's traffic (bytes/s published and released), fill and consumer,
    /// refreshed every interval until Ctrl-C. Read-only, as `inspect`.
    Top {
        /// The process to watch (every process of this user without one).
        pid: Option<i32>,
        /// Milliseconds between refreshes.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        /// Stop after this many refreshes (default: until Ctrl-C).
        #[arg(long)]
        count: Option<u64>,
        /// Prints one JSON object per refresh and line: {"interval_s", "rings": [{pid,
        /// fd, inode, kind, mode, consumer, fill, bytes_in_per_s, bytes_out_per_s,
        /// messages_per_s, sleeps_per_s}]} (the last two null on a compatible ring).
        #[arg(long)]
        json: bool,
    },
    /// Measures round trips (the cache-line floor, SPSC, RPC over shared memory and
    /// TCP) and streaming here, with CPU placement stated; `--plot` draws the latency
    /// percentile curves to an SVG file.
    Bench(bench::BenchArgs),
    /// Calls MSG_TYPE on the server at ADDR (tcp://host:port, or a shared-memory
    /// server's socket path) and prints the reply. An error reply is printed to stderr
    /// with exit code 3.
    Call(call::CallArgs),
}

/// Runs the command line `args` (the program name first, as `std::env::args_os`) and
/// returns the exit code: 0 done, 1 failed, 2 bad usage, 3 an error reply (`call`).
/// Output goes to this process's stdout and stderr.
pub fn run<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let code = match Cli::try_parse_from(args) {
        Ok(cli) => execute(cli),
        Err(e) => {
            // --help and --version land here too, with exit code 0.
            let _ = e.print();
            u8::try_from(e.exit_code()).unwrap_or(2)
        }
    };
    let _ = std::io::stdout().flush();
    code
}

fn execute(cli: Cli) -> u8 {
    const SUCCESS: u8 = 0;
    const FAILURE: u8 = 1;
    match cli.command {
        Command::Doctor { json } => {
            let checks = tachyon::doctor::run();
            let ok = tachyon::doctor::all_required_present(&checks);
            if json {
                println!("{}", doctor::to_json(&checks, ok));
            } else {
                doctor::print_table(&checks, ok);
            }
            if ok {
                SUCCESS
            } else {
                FAILURE
            }
        }
        Command::Inspect { pid, json } => {
            if let Some(p) = pid {
                if std::fs::metadata(format!("/proc/{p}")).is_err() {
                    eprintln!("tachyon inspect: no process {p}");
                    return FAILURE;
                }
            }
            let pids = pid.map(|p| vec![p]);
            let arenas = tachyon::inspect::arenas(pids.as_deref());
            if json {
                println!("{}", inspect::to_json(&arenas));
            } else {
                inspect::print_table(&arenas);
            }
            SUCCESS
        }
        Command::Top { pid, interval_ms, count, json } => {
            top::run(pid, std::time::Duration::from_millis(interval_ms.max(50)), count, json);
            SUCCESS
        }
        Command::Bench(args) => match bench::run(&args) {
            Ok(()) => SUCCESS,
            Err(e) => {
                eprintln!("tachyon bench: {e}");
                FAILURE
            }
        },
        Command::Call(args) => match call::run(&args) {
            Ok(reply) => {
                println!("{reply}");
                SUCCESS
            }
            Err(f) => {
                eprintln!("tachyon call: {}", f.message);
                f.code
            }
        },
    }
}
