//! Test fixtures: busybox rootfs with crafted `/etc/passwd` and `/etc/group`,
//! bundles laid out as containerd lays them, and the wrapper run over a real
//! runtime.
#![allow(dead_code)]

pub mod bounded;
pub mod containerd;
pub mod cri;
pub mod native_strict;
pub mod oci_image;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

/// The binary cargo built for the tests (empty in an example, which sets
/// `STRICT_GROUPS_BIN`).
pub const WRAPPER: &str = match option_env!("CARGO_BIN_EXE_strict-groups") {
    Some(path) => path,
    None => "",
};

/// The binary under test: `$STRICT_GROUPS_BIN` (the benchmark and the demo
/// set it to the static release build that ships) or the one cargo built.
pub fn wrapper_bin() -> String {
    std::env::var("STRICT_GROUPS_BIN")
        .ok()
        .or_else(|| Some(WRAPPER.to_string()).filter(|w| !w.is_empty()))
        .expect("STRICT_GROUPS_BIN names the strict-groups binary")
}
/// The real runtime the container tests run under the wrapper and bare:
/// `STRICT_GROUPS_TEST_RUNTIME` (runc, crun, youki or a path), else runc.
pub fn test_runtime() -> String {
    std::env::var("STRICT_GROUPS_TEST_RUNTIME").unwrap_or_else(|_| "runc".to_string())
}

pub const POLICY: &str = "strict-groups.io/supplemental-groups-policy";

/// The static busybox that Debian's `busybox-static` installs.
pub const BUSYBOX: &str = "/bin/busybox";

pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests create real containers and must run as root"
    );
    assert!(Path::new(BUSYBOX).exists(), "install busybox-static");
}

/// An image's files.
#[derive(Clone, Debug, Default)]
pub struct Image {
    pub passwd: Option<String>,
    pub group: Option<String>,
}

/// The KEP-3619 example image: alice (1000) is in `group-in-image` (50000).
pub fn kep_image() -> Image {
    Image {
        passwd: Some(
            "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n".into(),
        ),
        group: Some("root:x:0:\nalice:x:1000:\ngroup-in-image:x:50000:alice\n".into()),
    }
}

/// A bundle directory (removed on drop) with a rootfs and a `config.json`.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub id: String,
    pub root: PathBuf,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn unique_id(prefix: &str) -> String {
    format!(
        "sg-{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

pub fn build_rootfs(rootfs: &Path, image: &Image) {
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    for d in ["proc", "dev", "sys", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).unwrap();
    for applet in ["sh", "id", "sleep", "cat", "true"] {
        symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    if let Some(p) = &image.passwd {
        std::fs::write(rootfs.join("etc/passwd"), p).unwrap();
    }
    if let Some(g) = &image.group {
        std::fs::write(rootfs.join("etc/group"), g).unwrap();
    }
}

/// A spec as `runc spec` writes it, then shaped as containerd's CRI plugin
/// shapes it: process user, args, annotations, compact JSON.
pub fn containerd_spec(
    args: &[&str],
    uid: u32,
    gid: u32,
    additional_gids: &[u32],
    annotations: &[(&str, &str)],
) -> Value {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(tmp.path())
        .output()
        .expect("runc spec");
    assert!(out.status.success(), "runc spec: {out:?}");
    let mut spec: Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("config.json")).unwrap()).unwrap();
    spec["process"]["terminal"] = json!(false);
    spec["process"]["args"] = json!(args);
    spec["process"]["user"] = json!({"uid": uid, "gid": gid, "additionalGids": additional_gids});
    spec["root"] = json!({"path": "rootfs", "readonly": false});
    let mut ann = serde_json::Map::new();
    ann.insert(
        "io.kubernetes.cri.container-type".into(),
        json!("container"),
    );
    ann.insert("io.kubernetes.cri.container-name".into(), json!("app"));
    ann.insert(
        "io.kubernetes.cri.sandbox-namespace".into(),
        json!("default"),
    );
    ann.insert("io.kubernetes.cri.sandbox-name".into(), json!("kep-pod"));
    for (k, v) in annotations {
        ann.insert((*k).into(), json!(v));
    }
    spec["annotations"] = Value::Object(ann);
    spec
}

impl Bundle {
    pub fn new(prefix: &str, image: &Image, spec: &Value) -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("sg-bundle")
            .tempdir()
            .unwrap();
        build_rootfs(&dir.path().join("rootfs"), image);
        std::fs::write(
            dir.path().join("config.json"),
            serde_json::to_vec(spec).unwrap(),
        )
        .unwrap();
        // As containerd lays it out: <state>/runc/<namespace>.
        let root = dir.path().join("runc").join("k8s.io");
        Bundle {
            dir,
            id: unique_id(prefix),
            root,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.path().join("config.json")
    }

    /// Sets annotations in config.json (after the id is known).
    pub fn annotate(&self, annotations: &[(&str, &str)]) {
        let mut spec: Value = serde_json::from_slice(&self.config_bytes()).unwrap();
        for (k, v) in annotations {
            spec["annotations"][*k] = json!(v);
        }
        std::fs::write(self.config_path(), serde_json::to_vec(&spec).unwrap()).unwrap();
    }

    /// Adds a bind mount of `source` at `destination` to config.json.
    pub fn add_bind_mount(&self, destination: &str, source: &Path) {
        let mut spec: Value = serde_json::from_slice(&self.config_bytes()).unwrap();
        spec["mounts"].as_array_mut().unwrap().push(json!({
            "destination": destination, "type": "bind",
            "source": source, "options": ["rbind", "ro"],
        }));
        std::fs::write(self.config_path(), spec.to_string()).unwrap();
    }

    /// `runc run` of the bundle without the wrapper: what the runtime alone gives.
    pub fn run_bare(&self) -> Output {
        let mut cmd = Command::new(test_runtime());
        cmd.arg("--root")
            .arg(&self.root)
            .args(["run", "--bundle"])
            .arg(self.path())
            .arg(&self.id)
            .stdin(Stdio::null());
        bounded::output_within(cmd, bounded::DEADLINE)
    }

    pub fn config_bytes(&self) -> Vec<u8> {
        std::fs::read(self.config_path()).unwrap()
    }

    pub fn log_path(&self) -> PathBuf {
        self.path().join("log.json")
    }

    /// The lines of the runtime `--log` file, parsed.
    pub fn log_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line {l:?}: {e}")))
            .collect()
    }

    /// The wrapper's decision lines in the log.
    pub fn decisions(&self) -> Vec<Value> {
        self.log_lines()
            .into_iter()
            .filter(|l| l["msg"] == "strict-groups: decision")
            .collect()
    }

    /// Global flags as containerd's shim passes them.
    pub fn globals(&self) -> Vec<String> {
        vec![
            "--root".into(),
            self.root.display().to_string(),
            "--log".into(),
            self.log_path().display().to_string(),
            "--log-format".into(),
            "json".into(),
        ]
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        for runtime in ["runc".to_string(), "crun".to_string(), test_runtime()] {
            let _ = Command::new(runtime)
                .arg("--root")
                .arg(&self.root)
                .args(["delete", "--force", &self.id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A stand-in runtime: prints `version` for `--version` and succeeds at
/// anything else (the wrapper's decision is under test, not the container).
pub fn fake_runtime(version: &str) -> tempfile::TempPath {
    use std::io::Write;
    let mut f = tempfile::Builder::new()
        .prefix("sg-fake-runtime")
        .tempfile()
        .unwrap();
    writeln!(
        f,
        "#!/bin/sh\n[ \"$1\" = --version ] && echo {version:?}\nexit 0"
    )
    .unwrap();
    std::fs::set_permissions(
        f.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    // Closed, so that it can be executed (no ETXTBSY).
    f.into_temp_path()
}

/// Parses a spec before and after the wrapper with `oci-spec` (youki's typed
/// OCI runtime spec) and checks that every field but
/// `process.user.additionalGids` is unchanged.
pub fn assert_only_gids_changed(before: &[u8], after: &[u8]) {
    use oci_spec::runtime::Spec;
    let before: Spec = serde_json::from_slice(before).expect("oci-spec parses the original");
    let mut after: Spec = serde_json::from_slice(after).expect("oci-spec parses the rewrite");
    let gids = before
        .process()
        .as_ref()
        .and_then(|p| p.user().additional_gids().clone());
    if let Some(process) = after.process_mut() {
        process.user_mut().set_additional_gids(gids);
    }
    assert_eq!(before, after, "a field other than additionalGids changed");
}

/// The same for an exec's process file.
pub fn assert_only_process_gids_changed(before: &[u8], after: &[u8]) {
    use oci_spec::runtime::Process;
    let before: Process = serde_json::from_slice(before).expect("oci-spec parses the original");
    let mut after: Process = serde_json::from_slice(after).expect("oci-spec parses the rewrite");
    after
        .user_mut()
        .set_additional_gids(before.user().additional_gids().clone());
    assert_eq!(before, after, "a field other than additionalGids changed");
}

/// A node config file for the wrapper.
pub struct NodeConfig {
    pub dir: tempfile::TempDir,
}

impl NodeConfig {
    pub fn new(body: &str) -> NodeConfig {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), body).unwrap();
        NodeConfig { dir }
    }

    pub fn runtime(runtime: &str) -> NodeConfig {
        Self::new(&format!("runtime = {runtime:?}\n"))
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }
}

/// The parent the wrapper sees, by argv\[0\]: who runs it decides whose
/// annotations it believes.
pub const CONTAINERD_SHIM: &str = "containerd-shim-runc-v2";
pub const CONMON: &str = "conmon";
/// A parent that is neither: no annotation is believed.
pub const OTHER: &str = "sh";

/// A command run by a stand-in parent named `parent` (a shell whose argv\[0\]
/// is that name): the wrapper reads its caller from its parent's command
/// line, as under containerd's shim or conmon. The shell passes on the exit
/// status, and dies of the same signal as its child.
pub fn under(parent: &str, program: &str, args: &[String]) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg0(parent)
        .arg("-c")
        .arg(r#""$@"; rc=$?; [ $rc -gt 128 ] && kill -$((rc - 128)) $$; exit $rc"#)
        .arg(parent)
        .arg(program)
        .args(args);
    cmd
}

/// Runs the wrapper under `parent` with `args` and the node config, stdin closed.
pub fn wrapper_under(parent: &str, config: &NodeConfig, args: &[String]) -> Command {
    let mut cmd = under(parent, &wrapper_bin(), args);
    cmd.env("STRICT_GROUPS_CONFIG", config.path())
        .env_remove("TTRPC_ADDRESS")
        .stdin(Stdio::null());
    cmd
}

/// Runs the wrapper as containerd's shim runs it, with `args` and the node
/// config, stdin closed.
pub fn wrapper(config: &NodeConfig, args: &[String]) -> Command {
    wrapper_under(CONTAINERD_SHIM, config, args)
}

/// Runs `cmd` to its end (at most [`bounded::DEADLINE`]): what it printed.
pub fn output(cmd: Command) -> Output {
    bounded::output_within(cmd, bounded::DEADLINE)
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// Arguments of `run --bundle B ID`, with the shim's global flags.
pub fn run_args(b: &Bundle) -> Vec<String> {
    let mut args = b.globals();
    args.extend([
        "run".into(),
        "--bundle".into(),
        b.path().display().to_string(),
        b.id.clone(),
    ]);
    args
}

/// `run --bundle B ID` through the wrapper (foreground): what the container printed.
pub fn run_container(config: &NodeConfig, b: &Bundle) -> Output {
    output(wrapper(config, &run_args(b)))
}

/// True when crun failed the way crun 1.8.1 does on a hybrid cgroup layout
/// (it says so on stderr or in the `--log` file).
pub fn crun_cannot_run_here(out: &Output, b: &Bundle) -> bool {
    const HYBRID: &str = "cgroups in hybrid mode not supported";
    !out.status.success()
        && (stderr(out).contains(HYBRID)
            || std::fs::read_to_string(b.log_path())
                .unwrap_or_default()
                .contains(HYBRID))
}

/// Arguments of `create --bundle B ID`, as containerd's shim passes them.
pub fn create_args(b: &Bundle) -> Vec<String> {
    let mut args = b.globals();
    args.extend([
        "create".into(),
        "--bundle".into(),
        b.path().display().to_string(),
        b.id.clone(),
    ]);
    args
}

/// Writes the bundle's `exec.json`: a process file running `id -G` as
/// `user` (a JSON `user` object), as CRI runtimes write one for an exec.
pub fn id_process(b: &Bundle, user: Value) -> PathBuf {
    let process = b.path().join("exec.json");
    let body = json!({"user": user, "args": ["id", "-G"], "cwd": "/", "env": ["PATH=/bin"],
                      "terminal": false});
    std::fs::write(&process, body.to_string()).unwrap();
    process
}

/// Arguments of `exec --process FILE ID`, as containerd's shim passes them.
pub fn exec_process_args(b: &Bundle, process: &Path) -> Vec<String> {
    let mut args = b.globals();
    args.extend([
        "exec".into(),
        "--process".into(),
        process.display().to_string(),
        b.id.clone(),
    ]);
    args
}

/// Runs a command that creates a container, its stdio on files: the
/// container keeps its stdio open until it exits, so nothing may wait for
/// EOF on it. Errors are read from the `--log` file.
pub fn status_detached(cmd: Command) -> std::process::ExitStatus {
    bounded::output_within(cmd, bounded::DEADLINE).status
}
