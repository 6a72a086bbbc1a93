//! One invocation of the wrapper: scan argv, act on `create`/`run`/`restore`
//! and `exec`, then execute the real runtime with the same argv. On any
//! failure the runtime is not executed, so the container is not started.

use std::ffi::OsString;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Map;

use crate::atomic;
use crate::cli::{self, Action, Invocation};
use crate::config::{Mode, NodeConfig};
use crate::containerd;
use crate::log::{self, Format};
use crate::plan::{self, Skip};
use crate::policy::{self, Allowed, Policy};
use crate::record::Record;
use crate::runtime;
use crate::spec::{self, Config};
use crate::state;

/// The most the wrapper reads of a `config.json` or process file. containerd
/// writes a few KiB; the Kubernetes API caps a pod's annotations at 256 KiB.
pub const SPEC_CAP: u64 = 16 << 20;

/// Runs the wrapper on `args` (argv without argv\[0\]). Returns only on
/// failure, with the exit status.
pub fn run(args: &[OsString]) -> i32 {
    let inv = cli::scan(args);
    let err = match prepare(&inv) {
        Ok(runtime) => runtime::exec(&runtime, args),
        Err(e) => e,
    };
    report_error(&inv, &err);
    1
}

/// Everything before the exec: returns the real runtime's path.
fn prepare(inv: &Invocation) -> Result<std::path::PathBuf> {
    let config = NodeConfig::load()?;
    let runtime = runtime::resolve(&config.runtime)?;
    if inv.action() != Action::Passthrough {
        check_log_writable(inv)?;
    }
    match inv.action() {
        Action::Passthrough => {}
        Action::Create => create(inv, &config)?,
        Action::Exec => exec(inv, &config, &runtime)?,
    }
    Ok(runtime)
}

/// The runtime fails on a `--log` it cannot open: find that out before
/// anything is changed, so that a rewritten config.json is never left for a
/// container that then does not start.
fn check_log_writable(inv: &Invocation) -> Result<()> {
    if let Some(path) = &inv.log {
        log::open_for_append(path)
            .with_context(|| format!("cannot open the --log file {}", path.display()))?;
    }
    Ok(())
}

fn load_config(path: &Path) -> Result<(Vec<u8>, Config)> {
    let bytes = atomic::read_capped(path, SPEC_CAP)?;
    let config =
        spec::parse_config(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    Ok((bytes, config))
}

fn create(inv: &Invocation, node: &NodeConfig) -> Result<()> {
    let path = inv.spec_path();
    let (bytes, config) = load_config(&path)?;
    let plan = plan::for_create(inv.container(), &inv.bundle_dir(), &config, node, || {
        containerd::endpoint_of_caller(inv.root.as_deref())
    })?;
    if plan.skip == Some(Skip::Sandbox) {
        return Ok(());
    }
    if plan.decision.changes() && node.mode == Mode::Enforce {
        let rewritten = spec::rewrite_additional_gids(&bytes, &config.user, &plan.decision.kept);
        atomic::replace(&path, &rewritten)?;
    }
    Record {
        action: "create",
        container_id: inv.container(),
        config: &config,
        choice: plan.choice,
        mode: node.mode,
        source: &plan.source,
        note: plan.note.as_deref(),
        decision: &plan.decision,
    }
    .write(inv, node);
    Ok(())
}

/// An exec never gets a gid that the container's main process did not get:
/// its gids are cut to the primary gid and the gids left in the container's
/// `config.json` (which the wrapper rewrote on create).
fn exec(inv: &Invocation, node: &NodeConfig, runtime: &Path) -> Result<()> {
    let process = match &inv.process {
        Some(path) => {
            let bytes = atomic::read_capped(path, SPEC_CAP)?;
            let user = spec::parse_process(&bytes)
                .with_context(|| format!("parsing process file {}", path.display()))?;
            Some((path, bytes, user))
        }
        None => None,
    };
    let trivial = process
        .as_ref()
        .is_none_or(|(_, _, user)| plan::only_primary(user));
    if trivial && inv.additional_gids.is_empty() {
        return Ok(());
    }
    let bundle = state::bundle_of(runtime, inv.root.as_deref(), inv.container())?;
    let (_, config) = load_config(&bundle.join("config.json"))?;
    if plan::is_sandbox(&config) {
        return Ok(());
    }
    let choice = plan::choose(&config, node)?;
    if choice.effective == Policy::Merge {
        return Ok(());
    }
    // The main process's groups: config.json's, which create rewrote. In
    // audit mode it did not, so they are decided again, as enforce would have.
    let main_kept = match node.mode {
        Mode::Enforce => config.user.additional_gids.clone(),
        Mode::Audit => {
            plan::for_create(inv.container(), &bundle, &config, node, || {
                containerd::endpoint_of_caller(inv.root.as_deref())
            })?
            .decision
            .kept
        }
    };
    let mut main_gids: std::collections::BTreeSet<u32> = main_kept.into_iter().collect();
    main_gids.insert(config.user.gid);
    if node.mode == Mode::Enforce {
        refuse_extra_gids(&inv.additional_gids, &main_gids)?;
    }
    let Some((path, bytes, user)) = process else {
        return Ok(());
    };
    let decision = policy::decide(
        &user.additional_gids,
        user.gid,
        Policy::Strict,
        &Allowed::Only(main_gids),
    );
    if decision.changes() && node.mode == Mode::Enforce {
        atomic::replace(
            path,
            &spec::rewrite_additional_gids(&bytes, &user, &decision.kept),
        )?;
    }
    Record {
        action: "exec",
        container_id: inv.container(),
        config: &config,
        choice: Some(choice),
        mode: node.mode,
        source: "container",
        note: None,
        decision: &decision,
    }
    .write(inv, node);
    Ok(())
}

/// runc's `exec --additional-gids` cannot add a group the main process lacks.
fn refuse_extra_gids(values: &[String], main_gids: &std::collections::BTreeSet<u32>) -> Result<()> {
    for value in values {
        for gid in value.split(',').filter(|s| !s.is_empty()) {
            let allowed = gid
                .trim()
                .parse::<u32>()
                .is_ok_and(|g| main_gids.contains(&g));
            if !allowed {
                bail!(
                    "exec --additional-gids {gid}: the container's main process does not have this group"
                );
            }
        }
    }
    Ok(())
}

/// Writes the error where containerd and CRI-O look for it, and on stderr.
fn report_error(inv: &Invocation, err: &anyhow::Error) {
    let mut msg = String::from(log::PREFIX);
    if let Some(id) = inv
        .container_id
        .as_deref()
        .filter(|_| inv.action() != Action::Passthrough)
    {
        msg.push_str(&format!("container {id}: "));
    }
    msg.push_str(&format!("{err:#}"));
    if let Some(path) = &inv.log {
        let line = log::line(
            Format::from_flag(inv.log_format.as_deref()),
            "error",
            &msg,
            &Map::new(),
        );
        if let Err(e) = log::append(path, &line) {
            eprintln!("{}cannot write to log {}: {e}", log::PREFIX, path.display());
        }
    }
    log::syslog(3, &msg);
    eprintln!("{msg}");
}
