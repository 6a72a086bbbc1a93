//! The wrapper's own commands: `configure`, `explain`, `doctor`, `report`,
//! `version`. They are
//! recognised only as the very first argument, and none of their names is a
//! command of runc, crun or youki (a test checks this against the installed
//! runtimes), so they never shadow the runtime: `strict-groups --version`
//! and every runtime command reach the real runtime unchanged.

use std::ffi::OsString;

use clap::{Parser, Subcommand};

use crate::{configure, doctor, explain, report};

/// Names of the wrapper's own commands.
pub const OWN_COMMANDS: &[&str] = &["configure", "explain", "doctor", "report", "version"];

#[derive(Parser)]
#[command(
    name = "strict-groups",
    about = "KEP-3619 Strict supplementary groups for containerd 1.6/1.7 and CRI-O < 1.31.\n\
             Called with a runtime command line (by containerd or CRI-O), it acts as the runtime.",
    disable_version_flag = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Add or remove the runtime entry in containerd's config or a CRI-O drop-in.
    ///
    /// Comments, order and all other settings are kept; running it twice
    /// changes nothing; a backup is written before any change. Exit status:
    /// 0 done (or nothing to do), 1 error (nothing written), 2 usage error.
    Configure(configure::Args),
    /// Print what the wrapper would decide for a container and why; changes nothing.
    ///
    /// Exit status: 0 decided (whatever the decision), 1 the wrapper would
    /// refuse the container (the error is printed), 2 usage error.
    Explain(explain::Args),
    /// Check this node's setup end to end and print a fix for each problem.
    ///
    /// Exit status: 0 no check failed (warnings allowed), 1 a check failed,
    /// 2 usage error.
    Doctor(doctor::Args),
    /// Group decision logs by namespace, workload, image and removed gids:
    /// which workloads depend on image groups (before switching audit to
    /// enforce).
    ///
    /// Malformed lines are named on stderr and skipped. Exit status: 0 done,
    /// 1 a file could not be read (the others are reported), 2 usage error.
    Report(report::Args),
    /// Print strict-groups' own version (`--version` is the runtime's).
    Version,
}

/// Runs an own command if `args[0]` names one; None otherwise.
pub fn run_if_own(args: &[OsString]) -> Option<i32> {
    let first = args.first()?.to_str()?;
    if !OWN_COMMANDS.contains(&first) {
        return None;
    }
    let argv = std::iter::once(OsString::from("strict-groups")).chain(args.iter().cloned());
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return Some(if e.use_stderr() { 2 } else { 0 });
        }
    };
    Some(match cli.command {
        Command::Configure(args) => configure::run(&args),
        Command::Explain(args) => explain::run(&args),
        Command::Doctor(args) => doctor::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Version => {
            println!("strict-groups {}", env!("CARGO_PKG_VERSION"));
            0
        }
    })
}
