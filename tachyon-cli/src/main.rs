//! The `tachyon` binary: see the `tachyon_cli` library for the commands.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(tachyon_cli::run(std::env::args_os()))
}
