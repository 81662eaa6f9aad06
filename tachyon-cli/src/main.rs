//! `tachyon`: Tachyon's command-line tool.
//!
//! - `tachyon doctor` checks what this machine lets Tachyon use (shared memory, futexes,
//!   peer credentials, io_uring and its operations, limits, seccomp) by trying each, and
//!   says why each matters and how to fix what is missing. The exit code is 1 when
//!   something Tachyon needs is missing.
//! - `tachyon call ADDR MSG_TYPE [PAYLOAD]` makes one call to any Tachyon server, over
//!   TCP or shared memory, and prints the reply or the decoded error reply.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod call;
mod doctor;

use std::process::ExitCode;

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
    /// Calls MSG_TYPE on the server at ADDR (tcp://host:port, or a shared-memory
    /// server's socket path) and prints the reply. An error reply is printed to stderr
    /// with exit code 3.
    Call(call::CallArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Doctor { json } => {
            let checks = tachyon::doctor::run();
            let ok = tachyon::doctor::all_required_present(&checks);
            if json {
                println!("{}", doctor::to_json(&checks, ok));
            } else {
                doctor::print_table(&checks, ok);
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Call(args) => match call::run(&args) {
            Ok(reply) => {
                println!("{reply}");
                ExitCode::SUCCESS
            }
            Err(f) => {
                eprintln!("tachyon call: {}", f.message);
                ExitCode::from(f.code)
            }
        },
    }
}
