//! KEP-3619's own Strict, asked of a CRI runtime that has it (containerd
//! 2.0+): the `supplemental_groups_policy` field, which the CRI types of the
//! `k8s-cri` crate (0.11) predate. Protobuf merges a message field that
//! arrives twice, so the bytes below, appended to an encoded request, set just
//! that field: `Strict` (1) in the sandbox's security context
//! (`LinuxSandboxSecurityContext.supplemental_groups_policy`, field 11) and
//! the container's (`LinuxContainerSecurityContext`, field 17), where the
//! kubelet sets it. Field numbers from the CRI's `api.proto` (cri-api 0.31+).
#![allow(dead_code)]

use std::marker::PhantomData;

use prost::Message;
use prost::bytes::{Buf, BufMut};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

const STRICT: u64 = 1;

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Field `n` holding the varint `v`.
fn varint_field(n: u64, v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    varint(n << 3, &mut out);
    varint(v, &mut out);
    out
}

/// Field `n` holding the message `inner`.
fn message_field(n: u64, inner: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    varint((n << 3) | 2, &mut out);
    varint(inner.len() as u64, &mut out);
    out.extend(inner);
    out
}

/// Within a `PodSandboxConfig`: linux (8) . security_context (2) . policy (11).
fn sandbox_config_strict() -> Vec<u8> {
    message_field(8, message_field(2, varint_field(11, STRICT)))
}

/// Within a `ContainerConfig`: linux (15) . security_context (2) . policy (17).
fn container_config_strict() -> Vec<u8> {
    message_field(15, message_field(2, varint_field(17, STRICT)))
}

/// RunPodSandbox with Strict set in the sandbox's config (field 1).
pub async fn run_pod_sandbox(
    channel: Channel,
    req: &k8s_cri::v1::RunPodSandboxRequest,
) -> Result<k8s_cri::v1::RunPodSandboxResponse, tonic::Status> {
    let mut body = req.encode_to_vec();
    body.extend(message_field(1, sandbox_config_strict()));
    call(channel, "/runtime.v1.RuntimeService/RunPodSandbox", body).await
}

/// CreateContainer with Strict set in the container's config (field 2) and
/// the sandbox's (field 3).
pub async fn create_container(
    channel: Channel,
    req: &k8s_cri::v1::CreateContainerRequest,
) -> Result<k8s_cri::v1::CreateContainerResponse, tonic::Status> {
    let mut body = req.encode_to_vec();
    body.extend(message_field(2, container_config_strict()));
    body.extend(message_field(3, sandbox_config_strict()));
    call(channel, "/runtime.v1.RuntimeService/CreateContainer", body).await
}

/// Sends `body` (an encoded request) to `method` of the CRI RuntimeService
/// and decodes the answer as `R`.
async fn call<R: Message + Default + Send + 'static>(
    channel: Channel,
    method: &'static str,
    body: Vec<u8>,
) -> Result<R, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unknown(format!("CRI channel: {e}")))?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(method);
    let codec = RawCodec::<R>(PhantomData);
    Ok(grpc
        .unary(tonic::Request::new(body), path, codec)
        .await?
        .into_inner())
}

/// Sends bytes as they are; decodes the answer with prost.
struct RawCodec<R>(PhantomData<R>);

impl<R: Message + Default + Send + 'static> Codec for RawCodec<R> {
    type Encode = Vec<u8>;
    type Decode = R;
    type Encoder = RawEncoder;
    type Decoder = ProstDecoder<R>;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> ProstDecoder<R> {
        ProstDecoder(PhantomData)
    }
}

struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

struct ProstDecoder<R>(PhantomData<R>);

impl<R: Message + Default> Decoder for ProstDecoder<R> {
    type Item = R;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<R>, tonic::Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        R::decode(bytes)
            .map(Some)
            .map_err(|e| tonic::Status::internal(format!("decoding the CRI answer: {e}")))
    }
}
