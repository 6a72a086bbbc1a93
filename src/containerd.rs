//! containerd's own record of a CRI container, the exact source of the
//! declared groups D on containerd nodes.
//!
//! containerd stores each CRI container's `ContainerConfig` (as sent by the
//! kubelet) in its metadata store, as the container extension
//! `io.cri-containerd.container.metadata`; it is there before the runtime's
//! `create` runs. The wrapper reads it with one `Containers.Get` on the
//! containerd socket that its parent shim names.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use prost::Message;

use crate::grpc;

/// The extension in which containerd's CRI plugin keeps a container's metadata.
pub const METADATA_EXTENSION: &str = "io.cri-containerd.container.metadata";

/// How long the wrapper waits for containerd before falling back. The
/// answer takes under a millisecond on a healthy node; a containerd that is
/// silent this long is stuck, and the container must not wait with it.
const TIMEOUT: Duration = Duration::from_millis(250);

/// containerd's gRPC socket and the namespace of the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub socket: PathBuf,
    pub namespace: String,
}

/// Finds containerd from the runc shim that runs us: its command line
/// (`containerd-shim-runc-v2 -namespace NS -id ID -address SOCK`) names socket
/// and namespace. Without it, the shim's `TTRPC_ADDRESS` (`SOCK.ttrpc`) names
/// the socket and the last component of `--root` the namespace.
pub fn endpoint(parent_cmdline: Option<&[u8]>, root: Option<&Path>) -> Option<Endpoint> {
    if let Some(ep) = parent_cmdline.and_then(endpoint_from_shim_cmdline) {
        return Some(ep);
    }
    let ttrpc = std::env::var("TTRPC_ADDRESS").ok()?;
    let socket = ttrpc.strip_suffix(".ttrpc")?;
    let namespace = root?.file_name()?.to_str()?;
    Some(Endpoint {
        socket: PathBuf::from(socket),
        namespace: namespace.to_string(),
    })
}

/// Reads `-address` and `-namespace` from a NUL-separated shim command line.
pub fn endpoint_from_shim_cmdline(cmdline: &[u8]) -> Option<Endpoint> {
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let program = Path::new(std::str::from_utf8(args.first()?).ok()?);
    if !program
        .file_name()?
        .to_str()?
        .starts_with("containerd-shim")
    {
        return None;
    }
    let value = |flag: &str| -> Option<String> {
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let a = std::str::from_utf8(a).ok()?;
            let name = a.trim_start_matches('-');
            if a.starts_with('-') {
                if let Some(v) = name.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
                    return Some(v.to_string());
                }
                if name == flag {
                    return it
                        .next()
                        .and_then(|v| std::str::from_utf8(v).ok())
                        .map(String::from);
                }
            }
        }
        None
    };
    Some(Endpoint {
        socket: PathBuf::from(value("address")?),
        namespace: value("namespace")?,
    })
}

/// The parts of containerd's `containers.v1` messages that the wrapper
/// reads, with the field numbers of containerd's
/// `api/services/containers/v1/containers.proto`. Decoding skips every
/// other field of the record (the spec above all) without copying it.
#[derive(Clone, PartialEq, prost::Message)]
struct GetContainerRequest {
    #[prost(string, tag = "1")]
    id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct GetContainerResponse {
    #[prost(message, optional, tag = "1")]
    container: Option<Container>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Container {
    #[prost(map = "string, message", tag = "10")]
    extensions: std::collections::HashMap<String, Any>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// The CRI metadata as containerd's `versionedMetadata` JSON holds it; only
/// the declared groups are read.
#[derive(serde::Deserialize)]
struct Versioned {
    #[serde(rename = "Metadata")]
    metadata: Metadata,
}

#[derive(serde::Deserialize)]
struct Metadata {
    #[serde(rename = "Config")]
    config: Option<CriConfig>,
}

#[derive(serde::Deserialize)]
struct CriConfig {
    linux: Option<Linux>,
}

#[derive(serde::Deserialize)]
struct Linux {
    security_context: Option<SecurityContext>,
}

#[derive(serde::Deserialize)]
struct SecurityContext {
    #[serde(default)]
    supplemental_groups: Vec<i64>,
}

/// D from the extension's JSON: `Metadata.Config.linux.security_context.supplemental_groups`.
/// An absent list means the pod declared no groups.
pub fn parse_declared(metadata_json: &[u8]) -> Result<Vec<u32>> {
    let v: Versioned =
        serde_json::from_slice(metadata_json).context("parsing containerd's CRI metadata")?;
    let config = v
        .metadata
        .config
        .ok_or_else(|| anyhow!("containerd's CRI metadata holds no container config"))?;
    let groups = config
        .linux
        .and_then(|l| l.security_context)
        .map(|s| s.supplemental_groups)
        .unwrap_or_default();
    // The kubelet only sends gids in 0..2^31; anything else can match no gid in A.
    Ok(groups
        .into_iter()
        .filter_map(|g| u32::try_from(g).ok())
        .collect())
}

/// containerd's answer: the groups the pod declared, or None when containerd
/// holds no CRI record of the container.
pub type Answer = Result<Option<Vec<u32>>>;

/// A question about container `id` sent to containerd and not yet answered.
/// The wrapper reads the image files of the group-name look-up check between
/// the two, while containerd handles the question.
#[derive(Debug)]
pub struct Query {
    context: String,
    call: std::io::Result<grpc::Pending>,
}

impl Query {
    /// Sends the question; a failure to connect or write is kept for
    /// [`Query::answer`] to report.
    pub fn send(ep: &Endpoint, id: &str) -> Query {
        let request = GetContainerRequest { id: id.to_string() }.encode_to_vec();
        let call = grpc::Call {
            path: "/containerd.services.containers.v1.Containers/Get",
            metadata: &[("containerd-namespace", &ep.namespace)],
            message: &request,
        };
        Query {
            context: format!(
                "asking containerd at {} (namespace {}) for container {id}",
                ep.socket.display(),
                ep.namespace
            ),
            call: grpc::send(&ep.socket, &call, TIMEOUT),
        }
    }

    /// containerd's answer: waited for until the question's deadline, or
    /// past it, taken only if it has already come in.
    pub fn answer(self) -> Answer {
        let context = self.context;
        let reply = self
            .call
            .and_then(grpc::Pending::reply)
            .context(context.clone())?;
        let message = match reply {
            grpc::Reply::Message(message) => message,
            grpc::Reply::Status { code: 5, .. } => return Ok(None),
            grpc::Reply::Status { code, message } => {
                return Err(anyhow!("{}: {message}", grpc::code_name(code))).context(context);
            }
        };
        let response = GetContainerResponse::decode(message.as_slice())
            .context("decoding containerd's reply")
            .context(context)?;
        response
            .container
            .and_then(|mut c| c.extensions.remove(METADATA_EXTENSION))
            .map(|any| parse_declared(&any.value))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shim_cmdline() {
        let ep = endpoint_from_shim_cmdline(
            b"/usr/bin/containerd-shim-runc-v2\0-namespace\0k8s.io\0-id\0abc\0-address\0/run/containerd/containerd.sock\0",
        )
        .unwrap();
        assert_eq!(ep.socket, PathBuf::from("/run/containerd/containerd.sock"));
        assert_eq!(ep.namespace, "k8s.io");
        let ep =
            endpoint_from_shim_cmdline(b"containerd-shim-runc-v2\0--namespace=n\0--address=/s\0")
                .unwrap();
        assert_eq!((ep.socket, ep.namespace), (PathBuf::from("/s"), "n".into()));
        assert!(
            endpoint_from_shim_cmdline(b"/usr/bin/conmon\0-address\0/s\0-namespace\0n\0").is_none()
        );
        assert!(endpoint_from_shim_cmdline(b"containerd-shim-runc-v2\0-namespace\0n\0").is_none());
        assert!(endpoint_from_shim_cmdline(b"").is_none());
    }

    /// The hand-written messages read what containerd's generated ones
    /// write: a whole record, spec and labels included.
    #[test]
    fn messages_match_containerds_definitions() {
        use containerd_client::services::v1 as api;
        let json = br#"{"Metadata":{"Config":{}}}"#.to_vec();
        let full = api::GetContainerResponse {
            container: Some(api::Container {
                id: "abc".into(),
                labels: [("l".to_string(), "v".to_string())].into(),
                image: "img".into(),
                spec: Some(prost_types::Any {
                    type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".into(),
                    value: vec![b'{'; 5000],
                }),
                extensions: [
                    (
                        METADATA_EXTENSION.to_string(),
                        prost_types::Any {
                            type_url: "x".into(),
                            value: json.clone(),
                        },
                    ),
                    ("other".to_string(), prost_types::Any::default()),
                ]
                .into(),
                sandbox: "s".into(),
                ..Default::default()
            }),
        };
        let ours = GetContainerResponse::decode(full.encode_to_vec().as_slice()).unwrap();
        let ext = &ours.container.unwrap().extensions;
        assert_eq!(ext[METADATA_EXTENSION].value, json);
        assert_eq!(ext.len(), 2);
        let request = GetContainerRequest { id: "abc".into() }.encode_to_vec();
        let theirs = api::GetContainerRequest::decode(request.as_slice()).unwrap();
        assert_eq!(theirs.id, "abc");
    }

    #[test]
    fn metadata() {
        let json = br#"{"Version":"v1","Metadata":{"ID":"abc","Name":"c","SandboxID":"s","Config":{"metadata":{"name":"c"},"image":{"image":"x"},"linux":{"security_context":{"run_as_user":{"value":1000},"supplemental_groups":[60000,2000]}}}}}"#;
        assert_eq!(parse_declared(json).unwrap(), vec![60000, 2000]);
        let none = br#"{"Version":"v1","Metadata":{"ID":"abc","Config":{"linux":{"security_context":{}}}}}"#;
        assert_eq!(parse_declared(none).unwrap(), Vec::<u32>::new());
        let no_linux = br#"{"Version":"v1","Metadata":{"Config":{}}}"#;
        assert_eq!(parse_declared(no_linux).unwrap(), Vec::<u32>::new());
        assert!(parse_declared(br#"{"Version":"v1","Metadata":{}}"#).is_err());
        assert!(parse_declared(b"garbage").is_err());
    }
}
