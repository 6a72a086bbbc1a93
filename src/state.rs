//! Where a running container's bundle is, read from the real runtime's own
//! state file: what an exec needs to find the container's `config.json`
//! without running a subprocess.
//!
//! runc keeps `<root>/<id>/state.json` with the bundle in `config.labels`
//! (`"bundle=/path"`); youki keeps `state.json` with `bundle`; crun keeps
//! `<root>/<id>/status` with `bundle`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

#[derive(serde::Deserialize)]
struct StateFile {
    #[serde(default)]
    bundle: Option<PathBuf>,
    #[serde(default)]
    config: Option<RuncConfig>,
    #[serde(default)]
    init_process_pid: Option<u32>,
}

#[derive(serde::Deserialize)]
struct RuncConfig {
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    namespaces: Vec<RuncNamespace>,
}

#[derive(serde::Deserialize)]
struct RuncNamespace {
    #[serde(rename = "type", default)]
    kind: String,
}

/// What the runtime's state says of a container: its bundle and, in runc's
/// state, its init process and whether runc put it in a user namespace (one
/// it made or one it joined).
#[derive(Debug, PartialEq, Eq)]
pub struct Container {
    pub bundle: PathBuf,
    pub init_pid: Option<u32>,
    pub has_user_namespace: bool,
}

/// Default state roots, by runtime binary name, when `--root` is absent.
fn default_root(runtime: &Path) -> PathBuf {
    let name = runtime
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.as_str() {
        "crun" => PathBuf::from("/run/crun"),
        "youki" => PathBuf::from("/run/youki"),
        _ => PathBuf::from("/run/runc"),
    }
}

/// The bundle directory of container `id`.
pub fn bundle_of(runtime: &Path, root: Option<&Path>, id: &str) -> Result<PathBuf> {
    Ok(container(runtime, root, id)?.bundle)
}

/// What the runtime's state says of container `id`.
pub fn container(runtime: &Path, root: Option<&Path>, id: &str) -> Result<Container> {
    if id.is_empty() || id.contains('/') || id == "." || id == ".." {
        bail!("invalid container id {id:?}");
    }
    let root = root
        .map(Path::to_path_buf)
        .unwrap_or_else(|| default_root(runtime));
    let dir = root.join(id);
    for name in ["state.json", "status"] {
        let path = dir.join(name);
        let data = match std::fs::read(&path) {
            Ok(data) => data,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let state: StateFile = serde_json::from_slice(&data)
            .with_context(|| format!("parsing runtime state {}", path.display()))?;
        // runc writes each annotation as a label `key=value`, then its own
        // `bundle=` last, and reads the last one back (utils.Annotations):
        // a pod annotation named `bundle` must not name the bundle here.
        let from_label = state.config.as_ref().and_then(|c| {
            c.labels
                .iter()
                .rev()
                .find_map(|l| l.strip_prefix("bundle=").map(PathBuf::from))
        });
        let has_user_namespace = state
            .config
            .as_ref()
            .is_some_and(|c| c.namespaces.iter().any(|n| n.kind == "NEWUSER"));
        if let Some(bundle) = state.bundle.or(from_label) {
            return Ok(Container {
                bundle,
                init_pid: state.init_process_pid,
                has_user_namespace,
            });
        }
        bail!("runtime state {} names no bundle", path.display());
    }
    bail!(
        "container {id:?} has no runtime state under {} (is it running?)",
        root.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_crun_and_youki_layouts() {
        let root = tempfile::tempdir().unwrap();
        let write = |id: &str, file: &str, body: &str| {
            std::fs::create_dir_all(root.path().join(id)).unwrap();
            std::fs::write(root.path().join(id).join(file), body).unwrap();
        };
        write(
            "a",
            "state.json",
            r#"{"id":"a","config":{"labels":["bundle=/pod/annotation","x=y","bundle=/b/a"]}}"#,
        );
        write("b", "status", r#"{"pid":1,"bundle":"/b/b","rootfs":"/r"}"#);
        write("c", "state.json", r#"{"id":"c","bundle":"/b/c"}"#);
        write("d", "state.json", r#"{"id":"d"}"#);
        write(
            "e",
            "state.json",
            r#"{"id":"e","init_process_pid":42,"config":{"labels":["bundle=/b/e"],
                "namespaces":[{"type":"NEWNS","path":""},{"type":"NEWUSER","path":""}]}}"#,
        );
        let r = Some(root.path());
        let rt = Path::new("/usr/bin/runc");
        assert_eq!(bundle_of(rt, r, "a").unwrap(), PathBuf::from("/b/a"));
        assert_eq!(bundle_of(rt, r, "b").unwrap(), PathBuf::from("/b/b"));
        assert_eq!(bundle_of(rt, r, "c").unwrap(), PathBuf::from("/b/c"));
        assert!(bundle_of(rt, r, "d").is_err());
        let runc = |id: &str| container(rt, r, id).unwrap();
        assert_eq!(
            runc("e"),
            Container {
                bundle: PathBuf::from("/b/e"),
                init_pid: Some(42),
                has_user_namespace: true,
            }
        );
        assert_eq!(
            (runc("a").init_pid, runc("a").has_user_namespace),
            (None, false)
        );
        assert!(bundle_of(rt, r, "missing").is_err());
        assert!(bundle_of(rt, r, "../a").is_err());
        assert!(bundle_of(rt, r, "").is_err());
    }
}
