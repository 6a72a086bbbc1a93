//! One invocation of the wrapper: scan argv, act on `create`/`run`/`restore`
//! and `exec`, then execute the real runtime with the same argv. On any
//! failure the runtime is not executed, so the container is not started.

use std::ffi::OsString;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

use crate::atomic;
use crate::cli::{self, Action, Invocation};
use crate::config::NodeConfig;
use crate::declared;
use crate::log::{self, Format};
use crate::policy::{self, Allowed, Decision, POLICY_ANNOTATION, Policy, PolicyChoice};
use crate::runtime;
use crate::spec::{self, Config, User};
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
    match inv.action() {
        Action::Passthrough => {}
        Action::Create => create(inv, &config)?,
        Action::Exec => exec(inv, &config, &runtime)?,
    }
    Ok(runtime)
}

/// Sandbox (pause) containers are passed through: they run no workload.
fn is_sandbox(config: &Config) -> bool {
    config.annotation("io.kubernetes.cri.container-type") == Some("sandbox")
        || config.annotation("io.kubernetes.cri-o.ContainerType") == Some("sandbox")
}

fn choose(config: &Config, node: &NodeConfig) -> Result<PolicyChoice> {
    Ok(policy::choose_policy(
        config.annotation(POLICY_ANNOTATION),
        node.default_policy,
        node.allow_merge_annotation,
    )?)
}

/// Nothing can be removed from A when it holds only the primary gid.
fn only_primary(user: &User) -> bool {
    user.additional_gids.iter().all(|&g| g == user.gid)
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
    if is_sandbox(&config) {
        return Ok(());
    }
    let choice = choose(&config, node)?;
    let user = &config.user;
    let mut fields = Map::new();
    let decision = if choice.effective == Policy::Merge || only_primary(user) {
        fields.insert("source".into(), json!("none"));
        policy::decide(
            &user.additional_gids,
            user.gid,
            Policy::Merge,
            &Allowed::AllBut(Default::default()),
        )
    } else {
        let declared = declared::for_create(
            inv.container(),
            inv.root.as_deref(),
            &inv.bundle_dir(),
            &config,
        )?;
        fields.insert("source".into(), json!(declared.source.to_string()));
        if let Some(note) = &declared.note {
            fields.insert("note".into(), json!(note));
        }
        policy::decide(
            &user.additional_gids,
            user.gid,
            choice.effective,
            &declared.allowed,
        )
    };
    if decision.changes() {
        let rewritten = spec::rewrite_additional_gids(&bytes, user, &decision.kept);
        atomic::replace(&path, &rewritten)?;
    }
    log_decision(inv, "create", &config, choice, &decision, fields);
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
        .is_none_or(|(_, _, user)| only_primary(user));
    if trivial && inv.additional_gids.is_empty() {
        return Ok(());
    }
    let bundle = state::bundle_of(runtime, inv.root.as_deref(), inv.container())?;
    let (_, config) = load_config(&bundle.join("config.json"))?;
    let choice = choose(&config, node)?;
    if choice.effective == Policy::Merge || is_sandbox(&config) {
        return Ok(());
    }
    let mut main_gids: std::collections::BTreeSet<u32> =
        config.user.additional_gids.iter().copied().collect();
    main_gids.insert(config.user.gid);
    for value in &inv.additional_gids {
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
    let Some((path, bytes, user)) = process else {
        return Ok(());
    };
    let decision = policy::decide(
        &user.additional_gids,
        user.gid,
        Policy::Strict,
        &Allowed::Only(main_gids),
    );
    if decision.changes() {
        atomic::replace(
            path,
            &spec::rewrite_additional_gids(&bytes, &user, &decision.kept),
        )?;
    }
    let mut fields = Map::new();
    fields.insert("source".into(), json!("container"));
    log_decision(inv, "exec", &config, choice, &decision, fields);
    Ok(())
}

/// One structured line per decision: in the runtime's `--log` file (level
/// info) and in syslog.
fn log_decision(
    inv: &Invocation,
    action: &str,
    config: &Config,
    choice: PolicyChoice,
    decision: &Decision,
    extra: Map<String, Value>,
) {
    let annotation = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| config.annotation(k))
            .unwrap_or("")
            .to_string()
    };
    let mut fields = Map::new();
    fields.insert("action".into(), json!(action));
    fields.insert("container".into(), json!(inv.container()));
    fields.insert(
        "pod".into(),
        json!(format!(
            "{}/{}",
            annotation(&[
                "io.kubernetes.cri.sandbox-namespace",
                "io.kubernetes.pod.namespace"
            ]),
            annotation(&["io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"])
        )),
    );
    fields.insert(
        "container_name".into(),
        json!(annotation(&[
            "io.kubernetes.cri.container-name",
            "io.kubernetes.container.name"
        ])),
    );
    fields.insert("policy".into(), json!(choice.effective.to_string()));
    if choice.merge_refused {
        fields.insert("merge_refused".into(), json!(true));
    }
    fields.extend(extra);
    fields.insert("kept".into(), json!(decision.kept));
    fields.insert("removed".into(), json!(decision.removed));
    let msg = format!("{}decision", log::PREFIX);
    if let Some(path) = &inv.log {
        let _ = log::append(
            path,
            &log::line(
                Format::from_flag(inv.log_format.as_deref()),
                "info",
                &msg,
                &fields,
            ),
        );
    }
    log::syslog(6, &log::line(Format::Json, "info", &msg, &fields));
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
