//! A private containerd for tests: its own root, state, socket and config,
//! nothing shared with a system containerd; stopped on drop.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::{Container, CreateContainerRequest, container::Runtime};

/// The directory of the containerd under test (`containerd`,
/// `containerd-shim-runc-v2`, `ctr`), from `STRICT_GROUPS_CONTAINERD_DIR`;
/// unset or empty: the ones on PATH (Debian 12's containerd 1.6).
fn containerd_dir() -> Option<PathBuf> {
    std::env::var_os("STRICT_GROUPS_CONTAINERD_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// The path of one of containerd's programs, `name`, of the containerd under test.
pub fn containerd_program(name: &str) -> PathBuf {
    match containerd_dir() {
        Some(dir) => dir.join(name),
        None => PathBuf::from(name),
    }
}

/// The release of the containerd under test, as `--version` prints it
/// ("1.7.24~ds1").
pub fn containerd_release() -> String {
    let out = Command::new(containerd_program("containerd"))
        .arg("--version")
        .output()
        .expect("running containerd --version");
    // "containerd github.com/containerd/containerd 1.7.24~ds1 ..."
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("containerd --version: {text}"))
        .trim_start_matches('v')
        .to_string()
}

/// The version of the containerd under test, as (major, minor).
pub fn containerd_version() -> (u32, u32) {
    let text = containerd_release();
    let mut parts = text.split(['.', '~', '-']);
    let mut next = || -> u32 {
        parts
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("containerd --version: {text}"))
    };
    (next(), next())
}

pub struct PrivateContainerd {
    pub dir: tempfile::TempDir,
    child: Child,
    env: Vec<(String, String)>,
}

impl PrivateContainerd {
    /// Starts containerd with `extra` appended to a minimal version-2 config.
    pub fn start(extra: &str) -> PrivateContainerd {
        Self::start_with(|_| extra.to_string(), |_| {}, &[])
    }

    /// Starts containerd with the config tail that `extra` makes from its
    /// directory, the config file then passed to `edit`, and `env` added to
    /// its environment (which its shims and runtimes inherit).
    pub fn start_with(
        extra: impl FnOnce(&std::path::Path) -> String,
        edit: impl FnOnce(&std::path::Path),
        env: &[(&str, &str)],
    ) -> PrivateContainerd {
        let dir = tempfile::Builder::new().prefix("sg-ctd").tempdir().unwrap();
        let d = dir.path();
        let extra = extra(d);
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\n[grpc]\naddress = \"{sock}\"\n\n[ttrpc]\naddress = \"{sock}.ttrpc\"\n\n{extra}",
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("containerd.sock").display(),
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        edit(&d.join("config.toml"));
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let child = Self::spawn(d, &env);
        let ctd = PrivateContainerd { dir, child, env };
        ctd.wait_ready();
        ctd
    }

    fn spawn(d: &std::path::Path, env: &[(String, String)]) -> Child {
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(d.join("containerd.log"))
            .unwrap();
        let mut cmd = Command::new(containerd_program("containerd"));
        // containerd finds its shim on PATH: the one of the same release.
        if let Some(dir) = containerd_dir() {
            let path = std::env::var("PATH").unwrap_or_default();
            cmd.env("PATH", format!("{}:{path}", dir.display()));
        }
        cmd.arg("--config")
            .arg(d.join("config.toml"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("starting containerd (install the containerd package)")
    }

    /// Stops containerd and starts it again on the same state; running
    /// containers (their shims) are not touched, as on a node.
    pub fn restart(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(self.socket());
        self.child = Self::spawn(self.dir.path(), &self.env);
        self.wait_ready();
    }

    fn stop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.socket().exists()
                && std::os::unix::net::UnixStream::connect(self.socket()).is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("containerd did not start:\n{}", self.log());
    }

    /// Stores a container record, as containerd's CRI plugin does, with the
    /// CRI metadata extension holding `metadata_json`.
    pub fn create_record(&self, namespace: &str, id: &str, metadata_json: Option<&str>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let socket = self.socket();
        rt.block_on(async {
            let channel = containerd_client::connect(&socket).await.unwrap();
            let mut client = ContainersClient::new(channel);
            let mut extensions = std::collections::HashMap::new();
            if let Some(json) = metadata_json {
                extensions.insert(
                    "io.cri-containerd.container.metadata".to_string(),
                    prost_types::Any {
                        type_url:
                            "github.com/containerd/containerd/pkg/cri/store/container/Metadata"
                                .into(),
                        value: json.as_bytes().to_vec(),
                    },
                );
            }
            let container = Container {
                id: id.to_string(),
                runtime: Some(Runtime {
                    name: "io.containerd.runc.v2".into(),
                    options: None,
                }),
                spec: Some(prost_types::Any {
                    type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".into(),
                    value: b"{}".to_vec(),
                }),
                extensions,
                ..Default::default()
            };
            let mut req = tonic::Request::new(CreateContainerRequest {
                container: Some(container),
            });
            req.metadata_mut()
                .insert("containerd-namespace", namespace.parse().unwrap());
            client.create(req).await.unwrap();
        });
    }
}

impl Drop for PrivateContainerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("--- containerd log (last 30 lines, newest first):");
            for l in tail {
                eprintln!("{l}");
            }
        }
        self.stop();
        kill_shims_of(&self.socket());
        unmount_under(self.dir.path());
    }
}

/// Detaches what the shims of a failed test left mounted under `dir`
/// (container rootfs), deepest first, so that the directory can be removed.
fn unmount_under(dir: &std::path::Path) {
    let mut points = mount_points_under(dir);
    points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for p in points {
        if let Ok(c) = std::ffi::CString::new(p.into_os_string().into_encoded_bytes()) {
            // SAFETY: a valid C string; the return value is not needed.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// The mount points at or under `dir` (container root filesystems, shm).
pub fn mount_points_under(dir: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// Kills the shims (and so their containers) that a containerd at `socket`
/// started and left behind, e.g. when a test failed before removing its pods.
fn kill_shims_of(socket: &std::path::Path) {
    let socket = socket.display().to_string();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in procs.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let is_shim = args
            .first()
            .is_some_and(|a| a.ends_with(b"containerd-shim-runc-v2"));
        if is_shim && args.contains(&socket.as_bytes()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// `config` with the node's own paths moved under `dir` (kind's base runtime
/// spec written there), so that a test's containerd touches nothing of the
/// host's.
pub fn private_paths(config: &str, dir: &Path) -> String {
    let private = |p: &str| dir.join(p.trim_start_matches('/')).display().to_string();
    let config = config
        .replace("/var/lib/containerd", &private("/var/lib/containerd"))
        .replace("/run/containerd", &private("/run/containerd"))
        .replace("/etc/containerd", &private("/etc/containerd"));
    std::fs::create_dir_all(private("/etc/containerd")).unwrap();
    let spec = Command::new("runc")
        .args(["spec", "--bundle", &private("/etc/containerd")])
        .output()
        .unwrap();
    assert!(spec.status.success());
    // kind's base spec is containerd's default one: no terminal.
    let mut base: serde_json::Value =
        serde_json::from_slice(&std::fs::read(private("/etc/containerd/config.json")).unwrap())
            .unwrap();
    base["process"]["terminal"] = serde_json::json!(false);
    std::fs::write(private("/etc/containerd/cri-base.json"), base.to_string()).unwrap();
    config
}

/// What a private test node needs on top of a node's config to run a pod
/// here: its own root, state and socket, the local pause image, no stream
/// port, cgroupfs (this VM runs no systemd), the sandbox's oom_score_adj
/// kept (no CAP_SYS_RESOURCE).
pub fn runnable_config(configured: &str, dir: &Path) -> String {
    use toml_edit::{DocumentMut, Item, value};
    let text = private_paths(configured, dir);
    let mut doc: DocumentMut = text.parse().unwrap();
    let path = |p: &str| dir.join(p).display().to_string();
    doc["root"] = value(path("root"));
    doc["state"] = value(path("state"));
    doc["grpc"]["address"] = value(path("containerd.sock"));
    doc["ttrpc"]["address"] = value(path("containerd.sock.ttrpc"));
    let version = doc.get("version").and_then(Item::as_integer);
    let plugin = strict_groups::runtime_entry::cri_plugin(version, false).unwrap();
    if version == Some(3) {
        // containerd 2's split CRI plugin: images, runtime, and the gRPC one.
        let images = &mut doc["plugins"]["io.containerd.cri.v1.images"];
        images["pinned_images"]["sandbox"] = value(super::cri::PAUSE_IMAGE);
        let grpc = &mut doc["plugins"]["io.containerd.grpc.v1.cri"];
        grpc["stream_server_address"] = value("127.0.0.1");
        grpc["stream_server_port"] = value("0");
    } else {
        let cri = &mut doc["plugins"][plugin];
        cri["sandbox_image"] = value(super::cri::PAUSE_IMAGE);
        cri["stream_server_address"] = value("127.0.0.1");
        cri["stream_server_port"] = value("0");
    }
    let cri = &mut doc["plugins"][plugin];
    cri["restrict_oom_score_adj"] = value(true);
    if version == Some(3) {
        // containerd 2.1 refuses bin_dir beside bin_dirs.
        cri["cni"]["bin_dirs"] = value(toml_edit::Array::from_iter([path("cni/bin")]));
        if let Some(cni) = cri["cni"].as_table_like_mut() {
            cni.remove("bin_dir");
        }
    } else {
        cri["cni"]["bin_dir"] = value(path("cni/bin"));
    }
    cri["cni"]["conf_dir"] = value(path("cni/conf"));
    if let Some(runtimes) = cri["containerd"]["runtimes"].as_table_like_mut() {
        for (_, runtime) in runtimes.iter_mut() {
            if runtime.get("options").is_some() {
                runtime["options"]["SystemdCgroup"] = value(false);
            }
        }
    }
    doc["plugins"]["io.containerd.internal.v1.opt"]["path"] = value(path("opt"));
    doc.to_string()
}

/// containerd's CRI metadata JSON for a container whose pod declares `groups`.
pub fn cri_metadata(id: &str, groups: &[u32]) -> String {
    serde_json::json!({
        "Version": "v1",
        "Metadata": {
            "ID": id, "Name": "app", "SandboxID": "sandbox",
            "Config": {
                "metadata": {"name": "app"},
                "image": {"image": "sha256:0"},
                "linux": {"security_context": {"run_as_user": {"value": 1000}, "supplemental_groups": groups}}
            },
            "ImageRef": "sha256:0", "LogPath": "", "StopSignal": "SIGTERM", "ProcessLabel": ""
        }
    })
    .to_string()
}
