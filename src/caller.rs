//! Who runs the wrapper, and which of a spec's annotations that caller wrote
//! itself.
//!
//! A pod author controls annotations: CRI-O copies every pod annotation into
//! a container's `config.json` and then overwrites only its own
//! `io.kubernetes.cri-o.*` keys; containerd passes the pod annotations that
//! its `pod_annotations` patterns allow and then overwrites only its own
//! `io.kubernetes.cri.*` keys. So only the caller's own family can be
//! trusted, and the caller is known from the process tree (the parent's
//! command line: containerd's runc shim, or CRI-O's conmon or crio itself),
//! which no pod or image controls, never from the annotations.

use std::path::Path;

use crate::spec::Config;

/// The program that ran the wrapper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// containerd's runc shim (`containerd-shim-runc-v2`, ...).
    Containerd,
    /// CRI-O: conmon (create, and exec for probes and podman), or crio itself
    /// (a streaming exec).
    Crio,
    /// Anything else (plain runc users, scripts): no annotation is trusted.
    Unknown,
}

/// The annotation keys a caller writes itself, after any pod annotation.
pub struct Keys {
    pub container_type: &'static str,
    pub sandbox_id: &'static str,
    /// The container's own id, where the caller writes it.
    pub container_id: Option<&'static str>,
    pub pod_namespace: &'static str,
    pub pod_name: &'static str,
    pub pod_uid: &'static str,
    pub container_name: &'static str,
    pub image: &'static str,
}

const CONTAINERD_KEYS: Keys = Keys {
    container_type: "io.kubernetes.cri.container-type",
    sandbox_id: "io.kubernetes.cri.sandbox-id",
    container_id: None,
    pod_namespace: "io.kubernetes.cri.sandbox-namespace",
    pod_name: "io.kubernetes.cri.sandbox-name",
    pod_uid: "io.kubernetes.cri.sandbox-uid",
    container_name: "io.kubernetes.cri.container-name",
    image: "io.kubernetes.cri.image-name",
};

/// CRI-O writes its own keys over the pod's annotations on a container; on
/// its infra container the pod's annotations come last and may overwrite
/// them, which can only make the infra container look like a workload. The
/// pod's identity is the kubelet's container labels, which CRI-O writes last.
const CRIO_KEYS: Keys = Keys {
    container_type: "io.kubernetes.cri-o.ContainerType",
    sandbox_id: "io.kubernetes.cri-o.SandboxID",
    container_id: Some("io.kubernetes.cri-o.ContainerID"),
    pod_namespace: "io.kubernetes.pod.namespace",
    pod_name: "io.kubernetes.pod.name",
    pod_uid: "io.kubernetes.pod.uid",
    container_name: "io.kubernetes.container.name",
    image: "io.kubernetes.cri-o.ImageName",
};

impl Caller {
    /// The caller named by a NUL-separated command line (its argv\[0\]).
    pub fn from_cmdline(cmdline: &[u8]) -> Caller {
        let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or_default();
        let name = Path::new(std::ffi::OsStr::new(
            std::str::from_utf8(argv0).unwrap_or_default(),
        ))
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
        if name.starts_with("containerd-shim") {
            Caller::Containerd
        } else if name == "conmon" || name == "crio" {
            Caller::Crio
        } else {
            Caller::Unknown
        }
    }

    /// The keys this caller writes itself; None when no annotation is trusted.
    pub fn keys(self) -> Option<&'static Keys> {
        match self {
            Caller::Containerd => Some(&CONTAINERD_KEYS),
            Caller::Crio => Some(&CRIO_KEYS),
            Caller::Unknown => None,
        }
    }

    /// A sandbox (pause) container, as its runtime says about this very
    /// container `id`: the type is `sandbox` and the sandbox id is `id` (and,
    /// on CRI-O, so is the container id). A pod annotation can set neither.
    pub fn is_sandbox(self, config: &Config, id: &str) -> bool {
        let Some(keys) = self.keys() else {
            return false;
        };
        !id.is_empty()
            && config.annotation(keys.container_type) == Some("sandbox")
            && config.annotation(keys.sandbox_id) == Some(id)
            && keys
                .container_id
                .is_none_or(|k| config.annotation(k) == Some(id))
    }

    /// The value of one of the caller's own keys, or "" when not trusted.
    pub fn own(self, config: &Config, key: impl Fn(&Keys) -> &'static str) -> &str {
        self.keys()
            .and_then(|k| config.annotation(key(k)))
            .unwrap_or("")
    }
}

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Caller::Containerd => "containerd",
            Caller::Crio => "cri-o",
            Caller::Unknown => "unknown",
        })
    }
}

/// The parent process's command line, read once per invocation.
pub fn parent_cmdline() -> Option<Vec<u8>> {
    use std::io::Read;
    let path = format!("/proc/{}/cmdline", std::os::unix::process::parent_id());
    // procfs reports a size of 0: a buffer of a page reads a shim's command
    // line at once, where std::fs::read would grow from 32 bytes.
    let mut data = Vec::with_capacity(4096);
    std::fs::File::open(path)
        .ok()?
        .read_to_end(&mut data)
        .ok()?;
    Some(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_config;

    fn config(annotations: &[(&str, &str)]) -> Config {
        let map: serde_json::Map<String, serde_json::Value> = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect();
        parse_config(
            serde_json::json!({ "annotations": map })
                .to_string()
                .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn caller_from_the_parent_command_line() {
        let c = |s: &[u8]| Caller::from_cmdline(s);
        assert_eq!(
            c(b"/usr/bin/containerd-shim-runc-v2\0-namespace\0k8s.io\0"),
            Caller::Containerd
        );
        assert_eq!(c(b"/usr/bin/conmon\0--api-version\0\x31\0"), Caller::Crio);
        assert_eq!(c(b"/usr/local/bin/crio\0"), Caller::Crio);
        for other in [&b"/bin/sh\0-c\0"[..], b"bash", b"", b"\xff", b"conmon-x"] {
            assert_eq!(c(other), Caller::Unknown, "{other:?}");
        }
    }

    #[test]
    fn only_the_callers_own_keys_make_a_sandbox() {
        let containerd = config(&[
            ("io.kubernetes.cri.container-type", "sandbox"),
            ("io.kubernetes.cri.sandbox-id", "abc"),
        ]);
        assert!(Caller::Containerd.is_sandbox(&containerd, "abc"));
        // Another container of the pod names the sandbox's id, not its own.
        assert!(!Caller::Containerd.is_sandbox(&containerd, "def"));
        // The other family is a pod annotation to this caller.
        assert!(!Caller::Crio.is_sandbox(&containerd, "abc"));
        assert!(!Caller::Unknown.is_sandbox(&containerd, "abc"));
        let crio = config(&[
            ("io.kubernetes.cri-o.ContainerType", "sandbox"),
            ("io.kubernetes.cri-o.SandboxID", "abc"),
            ("io.kubernetes.cri-o.ContainerID", "abc"),
        ]);
        assert!(Caller::Crio.is_sandbox(&crio, "abc"));
        assert!(!Caller::Containerd.is_sandbox(&crio, "abc"));
        let forged_type_only = config(&[("io.kubernetes.cri-o.ContainerType", "sandbox")]);
        assert!(!Caller::Crio.is_sandbox(&forged_type_only, "abc"));
        assert!(!Caller::Containerd.is_sandbox(&config(&[]), ""));
    }

    #[test]
    fn identity_comes_from_the_callers_keys_only() {
        let c = config(&[
            ("io.kubernetes.cri.sandbox-name", "real"),
            ("io.kubernetes.pod.name", "forged"),
        ]);
        assert_eq!(Caller::Containerd.own(&c, |k| k.pod_name), "real");
        assert_eq!(Caller::Crio.own(&c, |k| k.pod_name), "forged");
        assert_eq!(Caller::Unknown.own(&c, |k| k.pod_name), "");
    }
}
