//! CRI-O's layout, from its documented behaviour (CRI-O itself is not
//! installable here): conmon runs the runtime as
//! `RUNTIME --root=R create --bundle B --pid-file B/pidfile ID` and
//! `RUNTIME --root=R exec --pid-file P --process F --detach ID`, without
//! `--log` (conmon reports the runtime's stderr); the bundle is
//! `.../overlay-containers/ID/userdata` with an absolute `root.path`; the
//! annotations are `io.kubernetes.cri-o.*` and `io.kubernetes.pod.*`, with the
//! pod's annotations copied. CRI-O before 1.31 keeps no record of the
//! declared groups, so D comes from the rootfs. Real runc runs the containers.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// A container laid out as CRI-O lays it out, removed on drop.
struct CrioContainer {
    dir: tempfile::TempDir,
    id: String,
}

impl CrioContainer {
    fn new(args: &[&str], a: &[u32], container_type: &str, extra: &[(&str, &str)]) -> Self {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix("sg-crio")
            .tempdir()
            .unwrap();
        let id = unique_id("crio");
        let c = CrioContainer { dir, id };
        build_rootfs(&c.rootfs(), &kep_image());
        // Where the container's user (1000) writes what it saw.
        std::fs::set_permissions(
            c.rootfs().join("tmp"),
            std::os::unix::fs::PermissionsExt::from_mode(0o1777),
        )
        .unwrap();
        std::fs::create_dir_all(c.bundle()).unwrap();
        let mut spec = containerd_spec(args, 1000, 1000, a, &[]);
        spec["root"] = json!({"path": c.rootfs(), "readonly": false});
        let mut ann = serde_json::Map::new();
        // The infra container is its own sandbox; a container names its pod's.
        let sandbox_id = match container_type {
            "sandbox" => c.id.clone(),
            _ => format!("infra-of-{}", c.id),
        };
        for (k, v) in [
            ("io.kubernetes.cri-o.ContainerType", container_type),
            ("io.kubernetes.cri-o.ContainerID", c.id.as_str()),
            ("io.kubernetes.cri-o.SandboxID", sandbox_id.as_str()),
            ("io.kubernetes.pod.namespace", "default"),
            ("io.kubernetes.pod.name", "kep-pod"),
            ("io.kubernetes.container.name", "app"),
        ]
        .into_iter()
        .chain(extra.iter().copied())
        {
            ann.insert(k.into(), json!(v));
        }
        spec["annotations"] = Value::Object(ann);
        // CRI-O writes its specs indented.
        std::fs::write(
            c.bundle().join("config.json"),
            serde_json::to_vec_pretty(&spec).unwrap(),
        )
        .unwrap();
        c
    }

    fn storage(&self) -> PathBuf {
        self.dir.path().join("containers/storage")
    }

    fn bundle(&self) -> PathBuf {
        self.storage()
            .join("overlay-containers")
            .join(&self.id)
            .join("userdata")
    }

    fn rootfs(&self) -> PathBuf {
        self.storage().join("overlay/0123abcd/merged")
    }

    /// `--root=R`, in the `--flag=value` form CRI-O's runtime args use.
    fn root_flag(&self) -> String {
        format!("--root={}", self.dir.path().join("runc").display())
    }

    /// The wrapper as conmon runs it.
    fn conmon(&self, config: &NodeConfig, args: &[&str]) -> Command {
        let mut all = vec![self.root_flag()];
        all.extend(args.iter().map(|s| s.to_string()));
        wrapper_under(CONMON, config, &all)
    }

    fn create(&self, config: &NodeConfig) -> std::process::Output {
        let bundle = self.bundle().display().to_string();
        let pidfile = self.bundle().join("pidfile").display().to_string();
        let mut cmd = self.conmon(
            config,
            &[
                "create",
                "--bundle",
                &bundle,
                "--pid-file",
                &pidfile,
                &self.id,
            ],
        );
        // The container keeps stdout open: read only stderr, from a file.
        let err = tempfile::NamedTempFile::new().unwrap();
        cmd.stdout(Stdio::null()).stderr(err.reopen().unwrap());
        let status = cmd.status().unwrap();
        std::process::Output {
            status,
            stdout: Vec::new(),
            stderr: std::fs::read(err.path()).unwrap(),
        }
    }

    /// Waits for the container to write `name` in its rootfs.
    fn read_when_written(&self, name: &str) -> String {
        let path = self.rootfs().join(name);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(s) = std::fs::read_to_string(&path)
                && s.ends_with('\n')
            {
                return s.trim().to_string();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the container did not write {name}");
    }
}

impl Drop for CrioContainer {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .arg(self.root_flag())
            .args(["delete", "--force", &self.id])
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn create_start_and_exec_get_strict_groups() {
    let config = NodeConfig::runtime("runc");
    let c = CrioContainer::new(
        &["sh", "-c", "id -G > /tmp/groups-main; exec sleep 300"],
        &[1000, 50000, 60000],
        "container",
        &[],
    );
    let before = std::fs::read(c.bundle().join("config.json")).unwrap();
    let out = c.create(&config);
    assert!(out.status.success(), "{out:?}");
    assert_only_gids_changed(
        &before,
        &std::fs::read(c.bundle().join("config.json")).unwrap(),
    );
    let out = output(c.conmon(&config, &["start", &c.id]));
    assert!(out.status.success(), "{out:?}");
    // The image grants 50000; D is not recorded on CRI-O, so the rootfs
    // recompute removes it (and would also remove a declared 50000).
    assert_eq!(c.read_when_written("tmp/groups-main"), "1000 60000");
    let after: Value =
        serde_json::from_slice(&std::fs::read(c.bundle().join("config.json")).unwrap()).unwrap();
    assert_eq!(
        after["process"]["user"]["additionalGids"],
        json!([1000, 60000])
    );

    // The exec arrives with the merged groups; the process file is outside
    // the bundle, as CRI-O writes it.
    let process = tempfile::Builder::new()
        .prefix("exec-process-")
        .tempfile()
        .unwrap();
    let process_json = json!({
        "terminal": false,
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [1000, 50000, 60000]},
        "args": ["sh", "-c", "id -G > /tmp/groups-exec"], "env": ["PATH=/bin"], "cwd": "/",
    });
    std::fs::write(process.path(), process_json.to_string()).unwrap();
    let pidfile = c.bundle().join("exec.pid").display().to_string();
    let process_path = process.path().display().to_string();
    let out = output(c.conmon(
        &config,
        &[
            "exec",
            "--pid-file",
            &pidfile,
            "--process",
            &process_path,
            "--detach",
            &c.id,
        ],
    ));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(c.read_when_written("tmp/groups-exec"), "1000 60000");
}

#[test]
fn sandbox_is_passed_through_byte_for_byte() {
    let config = NodeConfig::runtime("runc");
    let c = CrioContainer::new(&["sleep", "300"], &[0, 10], "sandbox", &[]);
    let before = std::fs::read(c.bundle().join("config.json")).unwrap();
    let out = c.create(&config);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read(c.bundle().join("config.json")).unwrap(),
        before
    );
}

#[test]
fn bad_annotation_is_refused_on_stderr_and_nothing_runs() {
    let config = NodeConfig::runtime("runc");
    let c = CrioContainer::new(
        &["sleep", "300"],
        &[1000, 50000],
        "container",
        &[(POLICY, "strict")],
    );
    let before = std::fs::read(c.bundle().join("config.json")).unwrap();
    let out = c.create(&config);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("strict-groups: "), "{err}");
    assert!(err.contains("\"strict\""), "{err}");
    assert_eq!(
        std::fs::read(c.bundle().join("config.json")).unwrap(),
        before
    );
    let state = Command::new("runc")
        .arg(c.root_flag())
        .args(["state", &c.id])
        .output()
        .unwrap();
    assert!(!state.status.success(), "the container must not exist");
}
