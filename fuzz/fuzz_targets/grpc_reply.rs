//! Bytes from containerd's socket, as the reply to the wrapper's one gRPC
//! call: HTTP/2 frames and HPACK header blocks are read without a panic,
//! whatever they hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strict_groups::grpc;

fuzz_target!(|data: &[u8]| {
    let _ = grpc::reply_from_bytes(data);
});
