//! `strict-groups explain`: what the wrapper would decide for a container,
//! and why, computed by the same code as `create` ([`plan::for_create`]);
//! nothing is written.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::{Value, json};

use crate::caller::Caller;
use crate::config::{Mode, NodeConfig};
use crate::containerd::{Endpoint, Query};
use crate::plan::{self, Plan};
use crate::policy::Policy;
use crate::record::Record;
use crate::specfile::SpecFile;
use crate::{runtime, state};

/// containerd's default socket.
const CONTAINERD_SOCKET: &str = "/run/containerd/containerd.sock";

#[derive(clap::Args)]
pub struct Args {
    /// A bundle directory (holding config.json), or with --root a container id.
    target: String,
    /// The runtime's state root: TARGET is then a container id whose bundle
    /// the runtime's state names.
    #[arg(long)]
    root: Option<PathBuf>,
    /// The container id (default: the bundle directory's name, as containerd names it).
    #[arg(long)]
    id: Option<String>,
    /// containerd's socket, to read the CRI record (default: /run/containerd/containerd.sock when it exists).
    #[arg(long)]
    address: Option<PathBuf>,
    /// containerd namespace (default: taken from the bundle path, else k8s.io).
    #[arg(long)]
    namespace: Option<String>,
    /// Do not ask containerd: decide as on a node without it.
    #[arg(long)]
    no_containerd: bool,
    /// Who runs the container, which decides whose annotations count:
    /// containerd, cri-o or unknown (default: from the bundle's path).
    #[arg(long, value_parser = ["containerd", "cri-o", "unknown"])]
    caller: Option<String>,
    /// Node config (default: $STRICT_GROUPS_CONFIG or /etc/strict-groups/config.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args) -> i32 {
    match explain(args) {
        Ok(report) => {
            if args.json {
                println!("{report}");
            } else {
                print!("{}", human(&report));
            }
            0
        }
        Err(e) => {
            let msg = format!("strict-groups: explain: {e:#}");
            if args.json {
                println!("{}", json!({"error": msg}));
            } else {
                eprintln!("{msg}");
            }
            1
        }
    }
}

fn explain(args: &Args) -> Result<Value> {
    let node_path = args.config.clone().unwrap_or_else(NodeConfig::path);
    let node = NodeConfig::load_from(&node_path)?.config;
    let (bundle, id) = match &args.root {
        Some(root) => {
            let rt = runtime::resolve(&node.runtime)?;
            let bundle = state::bundle_of(&rt, Some(root), &args.target)?;
            (bundle, args.target.clone())
        }
        None => {
            let bundle = PathBuf::from(&args.target);
            let bundle = bundle.canonicalize().unwrap_or(bundle);
            let id = args.id.clone().unwrap_or_else(|| {
                bundle
                    .canonicalize()
                    .ok()
                    .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .unwrap_or_default()
            });
            (bundle, id)
        }
    };
    let spec = SpecFile::load_config(&bundle.join("config.json"))?;
    let config = &spec.doc;
    let caller = caller(args, &bundle);
    let endpoint = endpoint(args, &bundle).filter(|_| caller == Caller::Containerd);
    let plan = plan::for_create(
        &id,
        &crate::declared::rootfs_of(&bundle, config),
        config,
        &node,
        caller,
        || endpoint.as_ref().map(|ep| Query::send(ep, &id).answer()),
    )?;
    let mut report = serde_json::Map::new();
    report.insert("bundle".into(), json!(bundle));
    report.insert("uid".into(), json!(config.user.uid));
    report.insert("gid".into(), json!(config.user.gid));
    report.insert("additional_gids".into(), json!(config.user.additional_gids));
    if let Some(ep) = &endpoint {
        report.insert(
            "containerd".into(),
            json!({"socket": ep.socket, "namespace": ep.namespace}),
        );
    }
    report.insert("why".into(), json!(why(&plan)));
    report.insert("would_rewrite".into(), json!(plan.decision.changes()));
    // Worded as audit mode words it ("would remove ..."): nothing is done here.
    let record = Record {
        action: "create",
        container_id: &id,
        config,
        caller,
        choice: plan.choice,
        mode: Mode::Audit,
        source: &plan.source,
        note: plan.note.as_deref(),
        decision: &plan.decision,
    };
    report.extend(record.fields());
    report.insert("mode".into(), json!(node.mode.to_string()));
    if let Some(skip) = plan.skip {
        report.insert("skip".into(), json!(format!("{skip:?}").to_lowercase()));
    }
    Ok(Value::Object(report))
}

/// The caller named by `--caller`, else the one whose layout the bundle's
/// path has: containerd's task directory, or CRI-O's `overlay-containers`.
fn caller(args: &Args, bundle: &Path) -> Caller {
    match args.caller.as_deref() {
        Some("containerd") => Caller::Containerd,
        Some("cri-o") => Caller::Crio,
        Some(_) => Caller::Unknown,
        None => {
            let abs = bundle
                .canonicalize()
                .unwrap_or_else(|_| bundle.to_path_buf());
            let has = |prefix: &str| {
                abs.components()
                    .any(|c| c.as_os_str().to_string_lossy().starts_with(prefix))
            };
            if has("io.containerd.runtime.") {
                Caller::Containerd
            } else if has("overlay-containers") {
                Caller::Crio
            } else {
                Caller::Unknown
            }
        }
    }
}

/// containerd's endpoint for a bundle: `--address`/`--namespace`, else the
/// default socket (when present) and the namespace in containerd's bundle
/// path (`.../io.containerd.runtime.v2.task/<namespace>/<id>`).
fn endpoint(args: &Args, bundle: &Path) -> Option<Endpoint> {
    if args.no_containerd {
        return None;
    }
    let socket = args.address.clone().or_else(|| {
        let default = PathBuf::from(CONTAINERD_SOCKET);
        default.exists().then_some(default)
    })?;
    let namespace = args.namespace.clone().unwrap_or_else(|| {
        let abs = bundle
            .canonicalize()
            .unwrap_or_else(|_| bundle.to_path_buf());
        let parent = abs.parent();
        let in_task_dir = parent
            .and_then(Path::parent)
            .and_then(Path::file_name)
            .is_some_and(|n| n.to_string_lossy().starts_with("io.containerd.runtime."));
        match parent.and_then(Path::file_name) {
            Some(ns) if in_task_dir => ns.to_string_lossy().into_owned(),
            _ => "k8s.io".to_string(),
        }
    });
    Some(Endpoint { socket, namespace })
}

/// One sentence on why the decision is what it is.
fn why(plan: &Plan) -> String {
    if let Some(skip) = plan.skip {
        return skip.reason().to_string();
    }
    let merge_refused = plan.choice.is_some_and(|c| c.merge_refused);
    let policy = match plan.choice.map(|c| c.effective) {
        Some(Policy::Strict) if merge_refused => {
            "policy Strict (the pod asked for Merge; the node does not allow it)"
        }
        _ => "policy Strict",
    };
    let source = match plan.source.as_str() {
        "containerd" => {
            "D is the pod's declared groups from containerd's record of the CRI request"
        }
        "rootfs" => "D is unknown, so the image's groups (from the rootfs) are removed",
        other => other,
    };
    format!("{policy}: keep the primary gid and D; {source}")
}

/// The report for a person.
fn human(r: &Value) -> String {
    let s = |k: &str| match &r[k] {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        v => v.to_string(),
    };
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<16}{v}\n"));
    line(
        "container",
        format!("{} ({})", s("container"), s("container_name")),
    );
    line("pod", format!("{} uid {}", s("pod"), s("pod_uid")));
    line("image", s("image"));
    line("bundle", s("bundle"));
    line(
        "process",
        format!(
            "uid {} gid {} additionalGids {}",
            s("uid"),
            s("gid"),
            s("additional_gids")
        ),
    );
    line("policy", s("policy"));
    line("mode", s("mode"));
    line("source of D", s("source"));
    if r.get("note").is_some() {
        line("note", s("note"));
    }
    line("kept", s("kept"));
    line("removed", s("removed"));
    line("why", s("why"));
    line("summary", s("summary"));
    out
}
