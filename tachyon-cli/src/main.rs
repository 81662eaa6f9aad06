//! `tachyon`: Tachyon's command-line tool.
//!
//! `tachyon doctor` checks what this machine lets Tachyon use (shared memory, futexes,
//! peer credentials, io_uring and its operations, limits, seccomp) by trying each, and
//! says why each matters and how to fix what is missing. `--json` prints the same for
//! scripts. The exit code is 1 when something Tachyon needs is missing.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tachyon::doctor::{self, Check, Level};

#[derive(Parser)]
#[command(
    name = "tachyon",
    version,
    about = "Tachyon's command-line tool",
    long_about = "Tachyon's command-line tool: checks what this machine supports for \
                  Tachyon's shared-memory rings and its TCP transport."
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Doctor { json } => {
            let checks = doctor::run();
            let ok = doctor::all_required_present(&checks);
            if json {
                println!("{}", to_json(&checks, ok));
            } else {
                print_table(&checks, ok);
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn to_json(checks: &[Check], ok: bool) -> serde_json::Value {
    let list: Vec<serde_json::Value> = checks
        .iter()
        .map(|c| {
            serde_json::json!({
                "name": c.name,
                "level": c.level.name(),
                "found": c.found,
                "why": c.why,
                "fix": c.fix,
            })
        })
        .collect();
    serde_json::json!({ "ok": ok, "checks": list })
}

fn print_table(checks: &[Check], ok: bool) {
    for c in checks {
        println!("{:<9} {:<18} {}", c.level.name(), c.name, c.found);
        if c.level != Level::Ok {
            println!("{:<28} why: {}", "", c.why);
            if let Some(fix) = c.fix {
                println!("{:<28} fix: {fix}", "");
            }
        }
    }
    let degraded = checks.iter().filter(|c| c.level == Level::Degraded).count();
    if ok {
        println!("\nTachyon runs here ({degraded} degraded; `tachyon doctor --json` says why each matters).");
    } else {
        println!("\nSomething Tachyon needs is missing (see `missing` above).");
    }
}
