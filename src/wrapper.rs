//! One invocation of the wrapper: scan argv, act on `create`/`run`/`restore`
//! and `exec`, then execute the real runtime with the same argv. On any
//! failure of create or exec the runtime is not executed, so the container
//! is not started; every other command reaches the runtime whatever the node
//! config holds.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Map;

use crate::caller::{self, Caller};
use crate::cli::{self, Action, Invocation};
use crate::config::{self, Mode, NodeConfig};
use crate::containerd;
use crate::declared;
use crate::log::{self, Target};
use crate::namelookup;
use crate::plan::{self, Skip};
use crate::policy::{self, Allowed, Decision, Policy};
use crate::record::Record;
use crate::rootfs::Rootfs;
use crate::runtime;
use crate::spec::Config;
use crate::specfile::SpecFile;
use crate::state;

/// Runs the wrapper on `args` (argv without argv\[0\]), run by the name
/// `invoked_as` (argv\[0\]'s file name, which picks the real runtime).
/// Returns only on failure, with the exit status.
pub fn run(invoked_as: &str, args: &[OsString]) -> i32 {
    let inv = cli::scan(args);
    let target = inv.log_target();
    let err = match prepare(&inv, &target, invoked_as) {
        Ok(runtime) => runtime::exec(&runtime, args),
        Err(e) => e,
    };
    report_error(&inv, &target, &err);
    1
}

/// Everything before the exec: returns the real runtime's path.
fn prepare(inv: &Invocation, target: &Target, invoked_as: &str) -> Result<PathBuf> {
    if inv.action() == Action::Passthrough {
        return passthrough_runtime(invoked_as);
    }
    let loaded = NodeConfig::load()?;
    let node = loaded.config;
    let runtime = runtime::resolve(node.runtime_for(invoked_as))?;
    check_log_writable(target)?;
    for warning in &loaded.warnings {
        target.warn(warning);
    }
    let parent = caller::parent_cmdline();
    let run = Run {
        inv,
        node: &node,
        target,
        caller: parent
            .as_deref()
            .map_or(Caller::Unknown, Caller::from_cmdline),
        parent: parent.as_deref(),
        runtime: &runtime,
        looks_up_names: Default::default(),
    };
    match inv.action() {
        Action::Passthrough => {}
        Action::Create => run.create()?,
        Action::Exec => run.exec()?,
    }
    Ok(runtime)
}

/// The real runtime for a command the wrapper does not act on: from the node
/// config when it names one that exists, else the default runtime, said on
/// stderr and in syslog. A broken or newer node config never keeps a
/// container from being stopped or deleted.
fn passthrough_runtime(invoked_as: &str) -> Result<PathBuf> {
    let (name, fell_back) = config::passthrough_runtime(&NodeConfig::path(), invoked_as);
    let warn = |msg: String| {
        let msg = format!("{}warning: {msg}", log::PREFIX);
        log::syslog(4, &msg);
        log::to_stderr(&msg);
    };
    if let Some(why) = fell_back {
        warn(why);
    }
    match runtime::resolve(&name) {
        Ok(path) => Ok(path),
        Err(e) => {
            let default = NodeConfig::default().runtime;
            if name == default {
                return Err(e);
            }
            warn(format!("{e:#}; passing the command to runtime {default:?}"));
            runtime::resolve(&default)
        }
    }
}

/// The runtime fails on a `--log` it cannot open: find that out before
/// anything is changed, so that a rewritten config.json is never left for a
/// container that then does not start.
fn check_log_writable(target: &Target) -> Result<()> {
    if let Some(path) = &target.path {
        target
            .open()
            .with_context(|| format!("cannot open the --log file {}", path.display()))?;
    }
    Ok(())
}

/// One create or exec, with what it works with.
struct Run<'a> {
    inv: &'a Invocation,
    node: &'a NodeConfig,
    target: &'a Target,
    caller: Caller,
    /// The parent's command line: containerd's shim names its socket there.
    parent: Option<&'a [u8]>,
    runtime: &'a Path,
    looks_up_names: std::cell::OnceCell<bool>,
}

impl Run<'_> {
    fn id(&self) -> &str {
        self.inv.container()
    }

    fn endpoint(&self) -> Option<containerd::Endpoint> {
        if self.caller != Caller::Containerd {
            return None;
        }
        containerd::endpoint(self.parent, self.inv.root.as_deref())
    }

    /// containerd's answer for D, when containerd's shim runs us. While
    /// containerd handles the question, the wrapper reads what the
    /// group-name look-up check will read: the answer takes a few tenths of
    /// a millisecond, most of it containerd's own.
    fn ask_containerd(&self, rootfs: &Rootfs, config: &Config) -> Option<containerd::Answer> {
        let ep = self.endpoint()?;
        // Before the question: on a cache miss this runs `RUNTIME --version`.
        let looks_up_names = self.looks_up_names();
        let query = containerd::Query::send(&ep, self.id());
        if looks_up_names {
            namelookup::prefetch(rootfs, config);
        }
        Some(query.answer())
    }

    fn create(&self) -> Result<()> {
        if let Some(why) = &self.inv.ambiguous {
            bail!(
                "the {} command line can be read more than one way ({why}); strict-groups does \
                 not guess which spec the runtime will use",
                self.inv.command.as_deref().unwrap_or("")
            );
        }
        let spec = SpecFile::load_config(&self.inv.spec_path())?;
        let rootfs = declared::rootfs_of(&self.inv.bundle_dir(), &spec.doc);
        let plan = plan::for_create(
            self.id(),
            &rootfs,
            &spec.doc,
            self.node,
            self.caller,
            || self.ask_containerd(&rootfs, &spec.doc),
        )?;
        if plan.skip == Some(Skip::Sandbox) {
            return Ok(());
        }
        let strict = plan.skip != Some(Skip::Merge);
        if strict && self.inv.command.as_deref() == Some("restore") {
            self.refuse_or_warn(anyhow::anyhow!(
                "restore under policy Strict: CRIU restores the process's groups from the \
                 checkpoint, which strict-groups cannot check; restore it with policy Merge \
                 or create the container anew"
            ))?;
        }
        if let Some(warning) = &plan.warning {
            self.target
                .warn(&format!("container {}: {warning}", self.id()));
        }
        // The groups the process will really get: what is kept, or in audit
        // mode what is there.
        let gids = match self.node.mode {
            Mode::Enforce => &plan.decision.kept,
            Mode::Audit => &spec.user().additional_gids,
        };
        if strict {
            self.check_runtime_lookup(&rootfs, &spec.doc, gids)?;
        }
        if plan.decision.changes() && self.node.mode == Mode::Enforce {
            spec.retain_gids(&plan.decision.kept)?;
        }
        self.record(
            "create",
            &spec.doc,
            plan.choice,
            &plan.source,
            plan.note.as_deref(),
            &plan.decision,
        );
        Ok(())
    }

    /// An exec never gets a gid that the container's main process did not
    /// get: its gids are cut to the primary gid and the gids left in the
    /// container's `config.json` (which the wrapper rewrote on create).
    fn exec(&self) -> Result<()> {
        let process = self
            .inv
            .process
            .as_deref()
            .map(SpecFile::load_process)
            .transpose()?;
        let state = state::container(self.runtime, self.inv.root.as_deref(), self.id())?;
        let container = SpecFile::load_config(&state.bundle.join("config.json"))?;
        let config = &container.doc;
        let rootfs = declared::rootfs_of(&state.bundle, config);
        if self.caller.is_sandbox(config, self.id()) {
            return Ok(());
        }
        let choice = plan::choose(config, self.node)?;
        if choice.effective == Policy::Merge {
            return Ok(());
        }
        if self.node.mode == Mode::Enforce {
            self.refuse_other_primary_gid(config, process.as_ref())?;
        }
        let trivial = process
            .as_ref()
            .is_none_or(|p| plan::only_primary(p.user()));
        let decision = if trivial && self.inv.additional_gids.is_empty() {
            None
        } else {
            Some(self.exec_decision(&rootfs, config, process.as_ref())?)
        };
        // The gids runc will look up: the process file's (as decided), or
        // config.json's without one, and `--additional-gids`.
        let mut gids = match (&process, &decision) {
            (Some(_), Some(d)) if self.node.mode == Mode::Enforce => d.kept.clone(),
            (Some(p), _) => p.user().additional_gids.clone(),
            (None, _) => config.user.additional_gids.clone(),
        };
        gids.extend(
            self.inv
                .additional_gids
                .iter()
                .flat_map(|v| v.split(','))
                .filter_map(|g| g.trim().parse::<u32>().ok()),
        );
        if !gids.is_empty()
            && self.looks_up_names()
            && !state.has_user_namespace
            && let Some(pid) = state.init_pid
            && let Err(e) = namelookup::check_init_user_namespace(pid)
        {
            self.refuse_or_warn(e)?;
        }
        self.check_runtime_lookup(&rootfs, config, &gids)?;
        let (Some(process), Some(decision)) = (process, decision) else {
            return Ok(());
        };
        if decision.changes() && self.node.mode == Mode::Enforce {
            process.retain_gids(&decision.kept)?;
        }
        self.record("exec", config, Some(choice), "container", None, &decision);
        Ok(())
    }

    /// The exec's gids cut to the main process's; `--additional-gids` asking
    /// for another gid is refused.
    fn exec_decision(
        &self,
        rootfs: &Rootfs,
        config: &Config,
        process: Option<&SpecFile<crate::spec::User>>,
    ) -> Result<Decision> {
        // The main process's groups: config.json's, which create rewrote. In
        // audit mode it did not, so they are decided again, as enforce would have.
        let main_kept = match self.node.mode {
            Mode::Enforce => config.user.additional_gids.clone(),
            Mode::Audit => {
                plan::for_create(self.id(), rootfs, config, self.node, self.caller, || {
                    self.ask_containerd(rootfs, config)
                })?
                .decision
                .kept
            }
        };
        let mut main_gids: BTreeSet<u32> = main_kept.into_iter().collect();
        main_gids.insert(config.user.gid);
        if self.node.mode == Mode::Enforce {
            refuse_extra_gids(&self.inv.additional_gids, &main_gids)?;
        }
        Ok(match process {
            Some(p) => policy::decide(
                &p.user().additional_gids,
                p.user().gid,
                Policy::Strict,
                &Allowed::Only(main_gids),
            ),
            None => Decision::default(),
        })
    }

    /// An exec's primary group (`--user`'s, or the process file's) is one
    /// the main process has: the CRI runtimes always ask for the container's.
    fn refuse_other_primary_gid(
        &self,
        config: &Config,
        process: Option<&SpecFile<crate::spec::User>>,
    ) -> Result<()> {
        let primary = match (&self.inv.user, process) {
            (Some(user), _) => user
                .split_once(':')
                .map(|(_, g)| g.trim().parse::<u32>().ok()),
            (None, Some(p)) => Some(Some(p.user().gid)),
            (None, None) => None,
        };
        let main = &config.user;
        match primary {
            Some(Some(g)) if g == main.gid || main.additional_gids.contains(&g) => Ok(()),
            None => Ok(()),
            Some(g) => bail!(
                "exec with primary group {}: the container's main process does not have this group",
                g.map_or("(not a number)".to_string(), |g| g.to_string())
            ),
        }
    }

    /// runc before 1.3 looks each gid up by name in the container's
    /// `/etc/group`: refuse (enforce) or warn (audit) when that would give
    /// the process another group than the gids it is to get.
    fn check_runtime_lookup(&self, rootfs: &Rootfs, config: &Config, gids: &[u32]) -> Result<()> {
        if gids.is_empty() || !self.looks_up_names() {
            return Ok(());
        }
        // A spec without a rootfs fails in audit mode too, as runc would.
        rootfs.path()?;
        if let Err(e) = namelookup::check(rootfs, config, gids) {
            self.refuse_or_warn(e)?;
        }
        Ok(())
    }

    /// Does the real runtime look gids up by name (runc before 1.3)?
    fn looks_up_names(&self) -> bool {
        *self
            .looks_up_names
            .get_or_init(|| namelookup::runtime_looks_up_names(self.runtime))
    }

    fn refuse_or_warn(&self, err: anyhow::Error) -> Result<()> {
        match self.node.mode {
            Mode::Enforce => Err(err),
            Mode::Audit => {
                self.target.warn(&format!(
                    "container {}: would refuse (audit mode): {err:#}",
                    self.id()
                ));
                Ok(())
            }
        }
    }

    fn record(
        &self,
        action: &str,
        config: &Config,
        choice: Option<policy::PolicyChoice>,
        source: &str,
        note: Option<&str>,
        decision: &Decision,
    ) {
        Record {
            action,
            container_id: self.id(),
            config,
            caller: self.caller,
            choice,
            mode: self.node.mode,
            source,
            note,
            decision,
        }
        .write(self.target, self.node);
    }
}

/// runc's `exec --additional-gids` cannot add a group the main process lacks.
fn refuse_extra_gids(values: &[String], main_gids: &BTreeSet<u32>) -> Result<()> {
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
fn report_error(inv: &Invocation, target: &Target, err: &anyhow::Error) {
    let mut msg = String::from(log::PREFIX);
    if let Some(id) = inv
        .container_id
        .as_deref()
        .filter(|_| inv.action() != Action::Passthrough)
    {
        msg.push_str(&format!("container {id}: "));
    }
    msg.push_str(&format!("{err:#}"));
    target.write("error", &msg, &Map::new());
    log::syslog(3, &msg);
    log::to_stderr(&msg);
}
