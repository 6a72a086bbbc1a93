//! `strict-groups doctor`: checks a node end to end and prints each check
//! with a fix. `--root` runs the file checks against a scratch root (tests,
//! images of a node's disk); the kernel check is always this kernel's.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::config::NodeConfig;
use crate::namelookup;
use crate::rootfs;
use crate::runtime::{self, is_executable};
use crate::runtime_entry::{self, HANDLER};

/// Where the checks look, relative to `--root`.
const CONTAINERD_CONFIGS: &[&str] = &[
    "etc/containerd/config.toml",
    // k3s and RKE2 render their containerd config from this template.
    "var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl",
    "var/lib/rancher/rke2/agent/etc/containerd/config.toml.tmpl",
];
const CRIO_DROPINS: &str = "etc/crio/crio.conf.d";
const CRIO_CONFIG: &str = "etc/crio/crio.conf";
const SEARCH_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(clap::Args)]
pub struct Args {
    /// Check the node files under this directory instead of /.
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// Node config, inside the root (default: $STRICT_GROUPS_CONFIG or /etc/strict-groups/config.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// containerd's version, instead of asking `containerd --version`.
    #[arg(long)]
    containerd_version: Option<String>,
    /// CRI-O's version, instead of asking `crio --version`.
    #[arg(long)]
    crio_version: Option<String>,
    /// The kubelet's version, instead of asking `kubelet --version`.
    #[arg(long)]
    kubernetes_version: Option<String>,
    /// Print one JSON object per check, one per line.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Ok,
    Warn,
    Fail,
    Info,
}

struct Check {
    name: &'static str,
    status: Status,
    detail: String,
    fix: Option<String>,
}

fn check(name: &'static str, status: Status, detail: String, fix: Option<String>) -> Check {
    Check {
        name,
        status,
        detail,
        fix,
    }
}

pub fn run(args: &Args) -> i32 {
    let checks = checks(args);
    for c in &checks {
        if args.json {
            let status = format!("{:?}", c.status).to_lowercase();
            println!(
                "{}",
                json!({"check": c.name, "status": status, "detail": c.detail, "fix": c.fix})
            );
        } else {
            let tag = match c.status {
                Status::Ok => " ok ",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
                Status::Info => "info",
            };
            println!("[{tag}] {}: {}", c.name, c.detail);
            if let Some(fix) = &c.fix {
                for line in fix.lines() {
                    println!("       {line}");
                }
            }
        }
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    if !args.json {
        println!(
            "{}",
            if failed == 0 {
                "doctor: no problem found".to_string()
            } else {
                format!("doctor: {failed} check(s) failed")
            }
        );
    }
    i32::from(failed > 0)
}

fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

fn checks(args: &Args) -> Vec<Check> {
    let mut out = Vec::new();
    let config_path = args.config.clone().unwrap_or_else(NodeConfig::path);
    let node = node_config(&args.root, &config_path, &mut out);
    if let Some(node) = &node {
        out.push(runtime_check(&args.root, &node.runtime));
        for (name, runtime) in &node.runtimes {
            let mut c = runtime_check(&args.root, runtime);
            c.detail = format!("[runtimes] {name}: {}", c.detail);
            out.push(c);
        }
        if args.root == Path::new("/") {
            if let Ok(runtime) = runtime::resolve(&node.runtime) {
                out.push(name_lookup_check(&runtime));
            }
        }
    }
    let containerd = containerd_checks(&args.root, &mut out);
    let crio = crio_check(&args.root, &mut out);
    if !containerd && !crio {
        out.push(check(
            "runtime entry",
            Status::Fail,
            "no containerd config and no CRI-O config found".into(),
            Some(format!(
                "add the strict-groups runtime entry to /{} (see config/containerd-runtime.toml) \
                 or a CRI-O drop-in in /{CRIO_DROPINS}/",
                CONTAINERD_CONFIGS[0]
            )),
        ));
    }
    out.push(if rootfs::openat2_supported() {
        check("kernel", Status::Ok, "openat2 is available".into(), None)
    } else {
        check(
            "kernel",
            Status::Ok,
            "openat2 is missing (Linux before 5.6): image files are resolved inside the \
             rootfs one component at a time instead"
                .into(),
            None,
        )
    });
    out.push(native_strict(args));
    out
}

fn node_config(root: &Path, path: &Path, out: &mut Vec<Check>) -> Option<NodeConfig> {
    let file = under(root, path);
    match NodeConfig::load_from(&file) {
        Ok(loaded) => {
            let c = loaded.config;
            for w in loaded.warnings {
                out.push(check("node config", Status::Warn, w, None));
            }
            let origin = if file.exists() {
                "parses"
            } else {
                "absent: the defaults apply"
            };
            out.push(check(
                "node config",
                Status::Ok,
                format!(
                    "{} {origin} (runtime {:?}, default_policy {}, allow_merge_annotation {}, mode {})",
                    path.display(),
                    c.runtime,
                    c.default_policy,
                    c.allow_merge_annotation,
                    c.mode
                ),
                None,
            ));
            Some(c)
        }
        Err(e) => {
            out.push(check(
                "node config",
                Status::Fail,
                format!("{e:#}"),
                Some(format!(
                    "fix {} (keys: runtime, default_policy, allow_merge_annotation, mode, \
                     decision_log, decision_log_max_bytes), or remove it to use the defaults",
                    path.display()
                )),
            ));
            None
        }
    }
}

/// A strict-groups binary: this very file, or a copy elsewhere, known by the
/// policy annotation's name in its bytes (read, never run: the path comes
/// from a config that may be wrong).
fn is_strict_groups(p: &Path) -> bool {
    if runtime::is_self(p) {
        return true;
    }
    let Ok(bytes) = std::fs::read(p) else {
        return false;
    };
    let marker = b"strict-groups.io/supplemental-groups-policy";
    bytes.windows(marker.len()).any(|w| w == marker)
}

fn runtime_check(root: &Path, runtime: &str) -> Check {
    let found = if runtime.contains('/') {
        Some(under(root, Path::new(runtime))).filter(|p| is_executable(p))
    } else {
        SEARCH_PATH
            .split(':')
            .map(|d| under(root, &Path::new(d).join(runtime)))
            .find(|p| is_executable(p))
    };
    match found {
        None => check(
            "real runtime",
            Status::Fail,
            format!("{runtime:?} was not found (absolute path, or on {SEARCH_PATH})"),
            Some("install runc (or crun, youki) or set runtime in the node config to its absolute path".into()),
        ),
        Some(p) if is_strict_groups(&p) => check(
            "real runtime",
            Status::Fail,
            format!("{runtime:?} resolves to {}, which is strict-groups itself", p.display()),
            Some("set runtime in the node config to the real runtime, e.g. \"/usr/bin/runc\"".into()),
        ),
        Some(p) => {
            // The path on the node, also when checking under --root.
            let shown = Path::new("/").join(p.strip_prefix(root).unwrap_or(&p));
            check("real runtime", Status::Ok, shown.display().to_string(), None)
        }
    }
}

/// The real runtime's version, and whether it looks gids up by name in the
/// image's /etc/group (runc before 1.3): containers whose image would rename
/// a kept gid are then refused.
fn name_lookup_check(runtime: &Path) -> Check {
    let version = namelookup::version_text(runtime);
    let first = version.lines().next().unwrap_or("").trim().to_string();
    let shown = if first.is_empty() {
        format!("{} did not tell its version", runtime.display())
    } else {
        first
    };
    if namelookup::looks_up_names(&version) {
        check(
            "runtime group look-up",
            Status::Warn,
            format!(
                "{shown}: resolves additionalGids by name in the image's /etc/group, so an image \
                 can turn a pod's gid into another group; strict-groups refuses such containers \
                 (pods of other runtime classes on this node are exposed)"
            ),
            Some("use runc 1.3 or newer, or crun, as the real runtime".into()),
        )
    } else {
        check(
            "runtime group look-up",
            Status::Ok,
            format!("{shown}: uses additionalGids as numbers"),
            None,
        )
    }
}

/// Checks every containerd config present; returns whether one was found.
fn containerd_checks(root: &Path, out: &mut Vec<Check>) -> bool {
    let mut found = false;
    for rel in CONTAINERD_CONFIGS {
        let file = root.join(rel);
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        found = true;
        out.push(containerd_entry(root, rel, &text));
    }
    found
}

fn containerd_entry(root: &Path, rel: &str, text: &str) -> Check {
    let name = "containerd runtime entry";
    let shown = format!("/{rel}");
    // k3s templates hold Go template actions; only plain TOML is checked.
    let doc: toml::Table = match toml::from_str(text) {
        Ok(d) => d,
        Err(e) if rel.ends_with(".tmpl") => {
            return check(
                name,
                Status::Warn,
                format!(
                    "{shown} is a template that is not plain TOML ({}); not checked",
                    e.message().trim()
                ),
                None,
            );
        }
        Err(e) => {
            return check(
                name,
                Status::Fail,
                format!("{shown} does not parse: {}", e.message().trim()),
                Some("fix the file; containerd does not start with it either".into()),
            );
        }
    };
    let version = doc.get("version").and_then(|v| v.as_integer());
    let plugin = match runtime_entry::cri_plugin(version, text.trim().is_empty()) {
        Ok(p) => p,
        Err(e) => {
            return check(
                name,
                Status::Fail,
                format!("{shown}: {e}"),
                Some("strict-groups knows containerd config versions 1, 2 and 3".into()),
            );
        }
    };
    let entry = doc
        .get("plugins")
        .and_then(|p| p.get(plugin))
        .and_then(|c| c.get("containerd"))
        .and_then(|c| c.get("runtimes"))
        .and_then(|r| r.get(HANDLER));
    let fix_entry = format!(
        "add to {shown}:\n{}",
        include_str!("../config/containerd-runtime.toml")
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let Some(entry) = entry else {
        return check(
            name,
            Status::Fail,
            format!("{shown} has no runtimes.{HANDLER} entry"),
            Some(fix_entry),
        );
    };
    let mut problems = Vec::new();
    let mut fixes = Vec::new();
    let runtime_type = entry
        .get("runtime_type")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if runtime_type != runtime_entry::RUNC_V2 {
        problems.push(format!("runtime_type is {runtime_type:?}"));
        fixes.push("runtime_type = \"io.containerd.runc.v2\"".to_string());
    }
    let annotations: Vec<&str> = entry
        .get("pod_annotations")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    if !runtime_entry::passes_policy(annotations.iter().copied()) {
        problems.push(format!(
            "pod_annotations {annotations:?} does not pass {}",
            crate::policy::POLICY_ANNOTATION
        ));
        fixes.push("pod_annotations = [\"strict-groups.io/*\"]".to_string());
    }
    let binary = entry
        .get("options")
        .and_then(|o| o.get("BinaryName"))
        .and_then(|v| v.as_str());
    match binary {
        None => {
            problems.push("options.BinaryName is not set (the shim would run plain runc)".into());
            fixes.push("options.BinaryName = \"/usr/local/bin/strict-groups\"".into());
        }
        Some(b) => {
            let p = under(root, Path::new(b));
            if !is_executable(&p) {
                problems.push(format!(
                    "options.BinaryName {b:?} does not exist or is not executable"
                ));
                fixes.push(format!("install strict-groups as {b}"));
            } else if !is_strict_groups(&p) {
                problems.push(format!("options.BinaryName {b:?} is not strict-groups"));
                fixes.push("point options.BinaryName at the strict-groups binary".into());
            }
        }
    }
    if problems.is_empty() {
        check(
            name,
            Status::Ok,
            format!(
                "{shown}: runtimes.{HANDLER} with BinaryName {:?}",
                binary.unwrap_or("")
            ),
            None,
        )
    } else {
        check(
            name,
            Status::Fail,
            format!("{shown}: runtimes.{HANDLER}: {}", problems.join("; ")),
            Some(format!(
                "in runtimes.{HANDLER} set: {}; then restart containerd",
                fixes.join(", ")
            )),
        )
    }
}

/// Checks CRI-O's config and drop-ins; returns whether CRI-O is configured here.
fn crio_check(root: &Path, out: &mut Vec<Check>) -> bool {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(CRIO_DROPINS))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "conf"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files.insert(0, root.join(CRIO_CONFIG));
    let mut seen = false;
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        seen = true;
        let Ok(doc) = toml::from_str::<toml::Table>(&text) else {
            out.push(check(
                "CRI-O runtime entry",
                Status::Fail,
                format!("{} does not parse", file.display()),
                Some("fix the file; CRI-O does not start with it either".into()),
            ));
            continue;
        };
        let entry = doc
            .get("crio")
            .and_then(|c| c.get("runtime"))
            .and_then(|r| r.get("runtimes"))
            .and_then(|r| r.get(HANDLER));
        if let Some(entry) = entry {
            let path = entry
                .get("runtime_path")
                .and_then(|v| v.as_str())
                .unwrap_or("");
            let p = under(root, Path::new(path));
            out.push(if is_executable(&p) && is_strict_groups(&p) {
                check("CRI-O runtime entry", Status::Ok, format!("{}: runtime_path {path:?}", file.display()), None)
            } else {
                check(
                    "CRI-O runtime entry",
                    Status::Fail,
                    format!("{}: runtime_path {path:?} is not the strict-groups binary", file.display()),
                    Some("set runtime_path = \"/usr/local/bin/strict-groups\" and install the binary there".into()),
                )
            });
            return true;
        }
    }
    if seen {
        out.push(check(
            "CRI-O runtime entry",
            Status::Fail,
            format!("no [crio.runtime.runtimes.{HANDLER}] in CRI-O's config"),
            Some(format!(
                "add /{CRIO_DROPINS}/50-strict-groups.conf:\n[crio.runtime.runtimes.{HANDLER}]\n\
                 runtime_path = \"/usr/local/bin/strict-groups\"\nruntime_type = \"oci\"\nruntime_root = \"/run/runc\""
            )),
        ));
    }
    seen
}

/// `major.minor` of the first version-looking word of `text`.
pub fn parse_version(text: &str) -> Option<(u32, u32)> {
    text.split(|c: char| c.is_whitespace() || c == 'v' || c == '~' || c == '-' || c == '+')
        .find_map(|w| {
            let mut parts = w.split('.');
            let major = parts.next()?.parse().ok()?;
            let minor = parts.next()?.parse().ok()?;
            Some((major, minor))
        })
}

fn probe(given: &Option<String>, command: &str) -> Option<String> {
    if let Some(v) = given {
        return Some(v.clone());
    }
    let out = Command::new(command).arg("--version").output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Does this node already offer native Strict (KEP-3619)?
fn native_strict(args: &Args) -> Check {
    let containerd = probe(&args.containerd_version, "containerd").and_then(|v| parse_version(&v));
    let crio = probe(&args.crio_version, "crio").and_then(|v| parse_version(&v));
    let kube = probe(&args.kubernetes_version, "kubelet").and_then(|v| parse_version(&v));
    let runtime_native =
        containerd.is_some_and(|v| v >= (2, 0)) || crio.is_some_and(|v| v >= (1, 31));
    let show = |v: Option<(u32, u32)>| {
        v.map(|(a, b)| format!("{a}.{b}"))
            .unwrap_or("not found".into())
    };
    let detail = format!(
        "containerd {}, CRI-O {}, Kubernetes {}",
        show(containerd),
        show(crio),
        show(kube)
    );
    match (runtime_native, kube.map(|v| v >= (1, 31))) {
        (true, Some(true)) => check(
            "native Strict",
            Status::Info,
            format!("{detail}: this node supports supplementalGroupsPolicy: Strict natively"),
            Some(
                "to retire strict-groups here:\n\
                 1. set securityContext.supplementalGroupsPolicy: Strict on the pods (Kubernetes 1.31-1.32: \
                 enable the SupplementalGroupsPolicy feature gate; beta and on by default from 1.33)\n\
                 2. enforce it with the admission policy of runtimeclass/ (require the field instead of the RuntimeClass)\n\
                 3. switch the pods' runtimeClassName back to the default, then remove the runtime entry and the binary"
                    .into(),
            ),
        ),
        (true, _) => check(
            "native Strict",
            Status::Info,
            format!("{detail}: the runtime supports Strict; Kubernetes 1.31+ is needed for the pod field"),
            None,
        ),
        _ => check(
            "native Strict",
            Status::Info,
            format!("{detail}: no native Strict here; strict-groups is needed"),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            parse_version("containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1"),
            Some((1, 6))
        );
        assert_eq!(parse_version("Kubernetes v1.31.2"), Some((1, 31)));
        assert_eq!(parse_version("crio version 1.31.0"), Some((1, 31)));
        assert_eq!(
            parse_version("containerd containerd.io v2.0.1 abc"),
            Some((2, 0))
        );
        assert_eq!(parse_version("no version"), None);
    }
}
