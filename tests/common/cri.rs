//! A Kubernetes node in miniature: a private containerd with its CRI plugin
//! and two runtime handlers, `runc` and `strict-groups` (the wrapper over
//! runc), driven through the CRI API as the kubelet drives it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

use super::containerd::{PrivateContainerd, containerd_program};
use super::native_strict;
use super::oci_image::OciImage;
use super::wrapper_bin;

pub const PAUSE_IMAGE: &str = "localhost/strict-groups-test/pause:1";
pub const HANDLERS: [&str; 2] = ["runc", "strict-groups"];

pub struct CriNode {
    // Field order is drop order: the client and runtime go before containerd.
    rt: tokio::runtime::Runtime,
    client: RuntimeServiceClient<Channel>,
    channel: Channel,
    pub containerd: PrivateContainerd,
    /// The wrapper's node config, rewritten by tests between scenarios.
    pub wrapper_config: PathBuf,
    /// The wrapper's decision log (JSON lines), named by every node config.
    pub decision_log: PathBuf,
    pods: Vec<String>,
}

/// The containerd config of a node with the runc handler; `configure` then
/// adds the strict-groups one.
fn cri_config(dir: &Path) -> String {
    let cri = r#"plugins."io.containerd.grpc.v1.cri""#;
    format!(
        r#"[plugins."io.containerd.internal.v1.opt"]
  path = "{dir}/opt"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # Test hosts may lack CAP_SYS_RESOURCE: keep the sandbox's oom_score_adj
  # (-998) no lower than containerd's own.
  restrict_oom_score_adj = true
  [{cri}.cni]
    bin_dir = "{dir}/cni/bin"
    conf_dir = "{dir}/cni/conf"
  [{cri}.containerd]
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        Root = "{dir}/runc"
    # A broad pass-through, as some nodes have: every pod annotation reaches
    # the runtime, forged runtime annotations included (containerd matches
    # with Go's path.Match, where "*" stops at a "/"). `configure` keeps it.
    [{cri}.containerd.runtimes.strict-groups]
      pod_annotations = ["*", "*/*"]
"#,
        dir = dir.display(),
    )
}

/// Adds the strict-groups runtime entry to containerd's config the way an
/// operator does: `strict-groups configure containerd`. It copies the runc
/// entry's options (here the test's runc `Root`).
fn configure_runtime_entry(config: &Path) {
    let out = Command::new(wrapper_bin())
        .args(["configure", "containerd", "--config"])
        .arg(config)
        .args(["--binary", &wrapper_bin()])
        .output()
        .unwrap();
    assert!(out.status.success(), "configure: {out:?}");
}

/// A pod as the kubelet describes it to the CRI runtime.
#[derive(Clone, Debug, Default)]
pub struct PodSpec {
    pub name: String,
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    /// What the kubelet sends as `supplemental_groups`: the pod's
    /// `supplementalGroups`, its `fsGroup` and its volumes' gids.
    pub supplemental_groups: Vec<i64>,
    pub annotations: Vec<(String, String)>,
    /// `supplementalGroupsPolicy: Strict`, KEP-3619's own field (containerd
    /// 2.0+ acts on it; older ones ignore it).
    pub native_strict: bool,
}

impl PodSpec {
    fn sandbox_config(&self, log_dir: &Path) -> cri::PodSandboxConfig {
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: self.name.clone(),
                uid: format!("uid-{}", self.name),
                namespace: "default".into(),
                attempt: 0,
            }),
            // Host network pods share the node's UTS namespace: no hostname.
            hostname: String::new(),
            log_directory: log_dir.display().to_string(),
            annotations: self.annotations.iter().cloned().collect(),
            linux: Some(cri::LinuxPodSandboxConfig {
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(namespaces()),
                    run_as_user: self.run_as_user.map(|value| cri::Int64Value { value }),
                    run_as_group: self.run_as_group.map(|value| cri::Int64Value { value }),
                    supplemental_groups: self.supplemental_groups.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn container_config(&self, name: &str, image: &str) -> cri::ContainerConfig {
        cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(cri::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            log_path: format!("{name}.log"),
            linux: Some(cri::LinuxContainerConfig {
                security_context: Some(cri::LinuxContainerSecurityContext {
                    namespace_options: Some(namespaces()),
                    run_as_user: self.run_as_user.map(|value| cri::Int64Value { value }),
                    run_as_group: self.run_as_group.map(|value| cri::Int64Value { value }),
                    supplemental_groups: self.supplemental_groups.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// Host network (no CNI needed), a PID namespace per container (so that
/// PID 1 is the container's main process), a shared IPC namespace.
fn namespaces() -> cri::NamespaceOption {
    cri::NamespaceOption {
        network: cri::NamespaceMode::Node as i32,
        pid: cri::NamespaceMode::Container as i32,
        ipc: cri::NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// A running pod: its sandbox id and config.
pub struct Pod {
    pub id: String,
    pub spec: PodSpec,
    config: cri::PodSandboxConfig,
}

impl CriNode {
    pub fn start() -> CriNode {
        Self::start_from(|config| {
            let dir = config.parent().unwrap();
            let mut text = std::fs::read_to_string(config).unwrap();
            text.push_str(&cri_config(dir));
            std::fs::write(config, text).unwrap();
            configure_runtime_entry(config);
        })
    }

    /// A node whose containerd config `write_config` writes, at the path it
    /// is given, over a minimal one naming the node's private root, state
    /// and socket (in the same directory).
    pub fn start_from(write_config: impl FnOnce(&Path)) -> CriNode {
        let state = tempfile::Builder::new()
            .prefix("sg-wrapper-config")
            .tempdir()
            .unwrap()
            .keep();
        let wrapper_config = state.join("config.toml");
        let decision_log = state.join("decisions.log");
        std::fs::write(&wrapper_config, "").unwrap();
        let containerd = PrivateContainerd::start_with(
            |_| String::new(),
            write_config,
            &[("STRICT_GROUPS_CONFIG", wrapper_config.to_str().unwrap())],
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let channel = rt.block_on(async {
            containerd_client::connect(containerd.socket())
                .await
                .expect("connecting to containerd's CRI socket")
        });
        let mut node = CriNode {
            rt,
            client: RuntimeServiceClient::new(channel.clone()),
            channel,
            containerd,
            wrapper_config,
            decision_log,
            pods: Vec::new(),
        };
        node.set_wrapper_config("");
        node.wait_cri_ready();
        node.import(&pause_image());
        node
    }

    /// Imports an image into the k8s.io namespace with `ctr`, as an
    /// operator loads an image without a registry.
    pub fn import(&self, image: &OciImage) {
        let archive = self.containerd.dir.path().join("image.tar");
        image.write_archive(&archive);
        self.import_archive(&archive);
    }

    /// Imports an OCI image archive with `ctr`.
    pub fn import_archive(&self, archive: &Path) {
        let out = Command::new(containerd_program("ctr"))
            .arg("--address")
            .arg(self.containerd.socket())
            .args(["--namespace", "k8s.io", "images", "import"])
            .arg(archive)
            .output()
            .expect("running ctr");
        assert!(
            out.status.success(),
            "ctr images import {}: {}",
            archive.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Sets the wrapper's node config (read on every call of the wrapper).
    /// Every config names the node's decision log.
    pub fn set_wrapper_config(&self, toml: &str) {
        let log = format!(
            "decision_log = {:?}\n",
            self.decision_log.display().to_string()
        );
        std::fs::write(&self.wrapper_config, log + toml).unwrap();
    }

    /// The decisions the wrapper logged on this node, in order.
    pub fn decisions(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.decision_log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a decision log line is JSON"))
            .filter(|l: &serde_json::Value| l["msg"] == "strict-groups: decision")
            .collect()
    }

    /// Restarts containerd; reconnects the CRI client.
    pub fn restart_containerd(&mut self) {
        self.containerd.restart();
        let socket = self.containerd.socket();
        self.channel = self
            .rt
            .block_on(async { containerd_client::connect(socket).await.unwrap() });
        self.client = RuntimeServiceClient::new(self.channel.clone());
        self.wait_cri_ready();
    }

    /// The CRI plugin answers "server is not initialized yet" for a moment
    /// after containerd's socket is up.
    fn wait_cri_ready(&mut self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let req = cri::VersionRequest {
                version: String::new(),
            };
            match self.rt.block_on(self.client.version(req)) {
                Ok(_) => return,
                Err(e) if std::time::Instant::now() > deadline => {
                    panic!("containerd's CRI plugin is not ready: {e}")
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
            }
        }
    }

    pub fn run_pod(&mut self, handler: &str, spec: &PodSpec) -> Result<Pod, tonic::Status> {
        let log_dir = self.containerd.dir.path().join("pods").join(&spec.name);
        std::fs::create_dir_all(&log_dir).unwrap();
        let config = spec.sandbox_config(&log_dir);
        let req = cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.into(),
        };
        let id = if spec.native_strict {
            let channel = self.channel.clone();
            self.rt
                .block_on(native_strict::run_pod_sandbox(channel, &req))?
                .pod_sandbox_id
        } else {
            self.rt
                .block_on(self.client.run_pod_sandbox(req))?
                .into_inner()
                .pod_sandbox_id
        };
        self.pods.push(id.clone());
        Ok(Pod {
            id,
            spec: spec.clone(),
            config,
        })
    }

    /// CreateContainer then StartContainer; returns the container id.
    pub fn start_container(
        &mut self,
        pod: &Pod,
        name: &str,
        image: &str,
    ) -> Result<String, tonic::Status> {
        self.start_container_with(pod, pod.spec.container_config(name, image))
    }

    /// The container of `name` and `image` with a host directory mounted.
    pub fn container_with_mount(
        pod: &Pod,
        name: &str,
        image: &str,
        host_path: &Path,
        container_path: &str,
    ) -> cri::ContainerConfig {
        let mut config = pod.spec.container_config(name, image);
        config.mounts.push(cri::Mount {
            container_path: container_path.into(),
            host_path: host_path.display().to_string(),
            ..Default::default()
        });
        config
    }

    /// CreateContainer with `config`, then StartContainer.
    pub fn start_container_with(
        &mut self,
        pod: &Pod,
        config: cri::ContainerConfig,
    ) -> Result<String, tonic::Status> {
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: pod.id.clone(),
            config: Some(config),
            sandbox_config: Some(pod.config.clone()),
        };
        let id = if pod.spec.native_strict {
            let channel = self.channel.clone();
            self.rt
                .block_on(native_strict::create_container(channel, &req))?
                .container_id
        } else {
            self.rt
                .block_on(self.client.create_container(req))?
                .into_inner()
                .container_id
        };
        self.rt
            .block_on(self.client.start_container(cri::StartContainerRequest {
                container_id: id.clone(),
            }))?;
        Ok(id)
    }

    /// ExecSync (what exec probes and `kubectl exec` use): exit code, stdout.
    pub fn exec_sync(&mut self, container: &str, cmd: &[&str]) -> (i32, String) {
        let req = cri::ExecSyncRequest {
            container_id: container.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 10,
        };
        let resp = self
            .rt
            .block_on(self.client.exec_sync(req))
            .unwrap_or_else(|e| panic!("ExecSync {cmd:?} in {container}: {e}"))
            .into_inner();
        (
            resp.exit_code,
            String::from_utf8_lossy(&resp.stdout).into_owned(),
        )
    }

    /// The supplementary groups of the container's main process (PID 1 of
    /// its PID namespace) and of an exec in it, each sorted.
    pub fn groups(&mut self, container: &str) -> (Vec<u32>, Vec<u32>) {
        let (code, status) = self.exec_sync(container, &["cat", "/proc/1/status"]);
        assert_eq!(code, 0, "{status}");
        let main = status
            .lines()
            .find_map(|l| l.strip_prefix("Groups:"))
            .map(parse_gids)
            .expect("Groups: line");
        let (code, status) = self.exec_sync(container, &["cat", "/proc/self/status"]);
        assert_eq!(code, 0, "{status}");
        let exec = status
            .lines()
            .find_map(|l| l.strip_prefix("Groups:"))
            .map(parse_gids)
            .expect("Groups: line");
        (main, exec)
    }

    /// The bundle directory containerd's shim made for `container`.
    pub fn bundle(&self, container: &str) -> PathBuf {
        self.containerd
            .dir
            .path()
            .join("state/io.containerd.runtime.v2.task/k8s.io")
            .join(container)
    }

    /// What the container `name` of `pod` has written so far, from the log
    /// file the CRI plugin keeps for it (`<time> <stream> <tag> <text>` lines).
    pub fn container_output(&self, pod: &Pod, name: &str) -> String {
        let path = PathBuf::from(&pod.config.log_directory).join(format!("{name}.log"));
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines()
            .filter_map(|l| l.splitn(4, ' ').nth(3))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    pub fn remove_pod(&mut self, pod: &Pod) {
        self.remove_pod_id(&pod.id);
        self.pods.retain(|p| *p != pod.id);
    }

    fn remove_pod_id(&mut self, id: &str) {
        let _ = self
            .rt
            .block_on(self.client.stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: id.into(),
            }));
        let _ = self.rt.block_on(
            self.client
                .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                    pod_sandbox_id: id.into(),
                }),
        );
    }
}

impl Drop for CriNode {
    /// Removes the pods a failed test left, then (in the fields' drops)
    /// stops containerd and kills any shim it left.
    fn drop(&mut self) {
        for id in std::mem::take(&mut self.pods) {
            self.remove_pod_id(&id);
        }
        if let Some(dir) = self.wrapper_config.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn parse_gids(s: &str) -> Vec<u32> {
    let mut v: Vec<u32> = s.split_whitespace().map(|g| g.parse().unwrap()).collect();
    v.sort();
    v.dedup();
    v
}

/// The sandbox image: busybox sleeping (a pause container only has to stay
/// alive; it is stopped with SIGKILL).
pub fn pause_image() -> OciImage {
    OciImage::new(PAUSE_IMAGE).cmd(&["sleep", "2147483647"])
}

/// Every pod annotation the test sets, as a map.
pub fn annotations(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
