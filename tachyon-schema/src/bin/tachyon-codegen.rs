//! `tachyon-codegen`: checks schemas, writes generated code, and keeps `tachyon.lock`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tachyon_schema::gen::{files, Lang};
use tachyon_schema::lock::{check, Lock};

/// The Tachyon schema tool: one schema, typed code in Rust, Python and TypeScript.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parses and checks every *.tachyon file in DIR (errors name file, line and column).
    Check {
        /// The schema directory.
        #[arg(default_value = "schemas")]
        dir: PathBuf,
    },
    /// Writes the generated modules of every schema in DIR into OUT.
    Gen {
        /// python or typescript (Rust uses `tachyon::include_schema!`).
        #[arg(long)]
        lang: Lang,
        /// The schema directory.
        dir: PathBuf,
        /// Where the modules go.
        #[arg(short, long)]
        out: PathBuf,
        /// Write nothing; fail if a file in OUT differs from what would be written.
        #[arg(long)]
        check: bool,
    },
    /// Compares DIR against DIR/tachyon.lock and records it when nothing breaks.
    Lock {
        /// The schema directory.
        #[arg(default_value = "schemas")]
        dir: PathBuf,
        /// Record a breaking change anyway (it breaks released peers).
        #[arg(long)]
        allow_breaking: bool,
        /// Write nothing; fail if the lock is missing, breaks, or is out of date.
        #[arg(long)]
        check: bool,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cmd: Command) -> Result<(), String> {
    match cmd {
        Command::Check { dir } => {
            let pkgs = tachyon_schema::load_dir(&dir).map_err(|e| e.to_string())?;
            println!("{}: {} package(s) ok", dir.display(), pkgs.len());
            Ok(())
        }
        Command::Gen { lang, dir, out, check } => {
            let pkgs = tachyon_schema::load_dir(&dir).map_err(|e| e.to_string())?;
            write_files(&out, &files(lang, &pkgs)?, check)
        }
        Command::Lock { dir, allow_breaking, check: only_check } => {
            let pkgs = tachyon_schema::load_dir(&dir).map_err(|e| e.to_string())?;
            lock(&dir.join("tachyon.lock"), &Lock::of(&pkgs), allow_breaking, only_check)
        }
    }
}

fn write_files(out: &Path, files: &[(String, String)], check: bool) -> Result<(), String> {
    let mut stale = Vec::new();
    for (name, text) in files {
        let path = out.join(name);
        let same = std::fs::read_to_string(&path).is_ok_and(|old| old == *text);
        if check {
            if !same {
                stale.push(path.display().to_string());
            }
        } else if !same {
            std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    if stale.is_empty() {
        Ok(())
    } else {
        Err(format!("generated code is out of date (regenerate it): {}", stale.join(", ")))
    }
}

fn lock(path: &Path, now: &Lock, allow_breaking: bool, only_check: bool) -> Result<(), String> {
    let old = match std::fs::read_to_string(path) {
        Ok(text) => Lock::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !only_check => Lock::default(),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let broken = check(&old, now);
    for v in &broken {
        eprintln!("{v}");
    }
    if !broken.is_empty() && !allow_breaking {
        return Err(format!(
            "{} breaking change(s) against {} (pass --allow-breaking to record them deliberately)",
            broken.len(),
            path.display()
        ));
    }
    if only_check {
        if old != *now {
            return Err(format!("{} is out of date: run `tachyon-codegen lock`", path.display()));
        }
        println!("{}: up to date, nothing breaks", path.display());
        return Ok(());
    }
    std::fs::write(path, now.to_text()).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("recorded {}", path.display());
    Ok(())
}
