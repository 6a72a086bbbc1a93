//! One unary gRPC call over HTTP/2 on a Unix socket, blocking: the one
//! question the wrapper asks containerd on a create. A general client
//! (tonic over hyper on a tokio runtime) cost 0.4 ms more per create than
//! this: the runtime, its tasks and the connection handshake it waits for.
//! Here the whole request (connection preface, settings, headers, message)
//! goes out in one write, and the reply's frames are read until the call's
//! trailers; nothing else of HTTP/2 is needed for one call on a fresh
//! connection. The request can be sent early ([`send`]) and its reply read
//! when it is needed ([`Pending::reply`]): the server's handling, a few
//! tenths of a millisecond, then overlaps the caller's own work.
//!
//! Limits: frames as the peer's default maximum allows (16 KiB request
//! frames); a reply of at most [`MAX_REPLY`] bytes, its header lists of at
//! most [`MAX_HEADER_LIST`] (advertised to the server); the whole call,
//! connect and writes included, within one deadline; past it (when the
//! caller's own work between send and reply took it), only what has already
//! come in is read. Anything else is an error, never a panic: the wrapper
//! runs on every create.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// The largest reply read (headers and message together): containerd's
/// own limit for a message. The record holds the container's spec, whose
/// environment alone can pass a megabyte (a ConfigMap of 1 MiB as envFrom).
pub const MAX_REPLY: usize = 16 << 20;

/// The largest header list decoded (SETTINGS_MAX_HEADER_LIST_SIZE): a
/// gRPC reply's headers and trailers are a few fields.
pub const MAX_HEADER_LIST: usize = 64 << 10;

/// The HTTP/2 frame size every peer accepts (SETTINGS_MAX_FRAME_SIZE default).
const MAX_FRAME: usize = 16_384;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// Frame types (RFC 9113, section 6).
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const PUSH_PROMISE: u8 = 0x5;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;

// Flags.
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// The stream of the call: the first a client opens.
const STREAM: u32 = 1;

/// A unary call: the method's path, request metadata, the encoded message.
pub struct Call<'a> {
    pub path: &'a str,
    pub metadata: &'a [(&'a str, &'a str)],
    pub message: &'a [u8],
}

/// How the call ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Status OK, with the reply message.
    Message(Vec<u8>),
    /// Any other status, with its message.
    Status { code: u32, message: String },
}

/// Makes `call` on the server at `socket`, within `timeout`.
pub fn unary(socket: &Path, call: &Call, timeout: Duration) -> io::Result<Reply> {
    send(socket, call, timeout)?.reply()
}

/// A call whose request is sent and whose reply is not read yet: the server
/// handles it while the caller goes on with its own work.
#[derive(Debug)]
pub struct Pending {
    stream: UnixStream,
    deadline: Instant,
    timeout: Duration,
}

/// Sends `call` to the server at `socket`; its reply is due within `timeout`
/// from now.
pub fn send(socket: &Path, call: &Call, timeout: Duration) -> io::Result<Pending> {
    let deadline = Instant::now() + timeout;
    let mut pending = Pending {
        stream: connect(socket, timeout)?,
        deadline,
        timeout,
    };
    let request = request(call, timeout)?;
    write_by(&mut pending.stream, &request, deadline).map_err(|e| pending.relabel(e))?;
    Ok(pending)
}

impl Pending {
    fn timed_out(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer within {:?}", self.timeout),
        )
    }

    fn relabel(&self, e: io::Error) -> io::Error {
        if is_timeout(&e) { self.timed_out() } else { e }
    }

    /// Reads the reply, by the deadline set when the call was sent; past it,
    /// only what has already come in (a reply still arriving then, such as
    /// one larger than the socket's buffer, times out).
    pub fn reply(mut self) -> io::Result<Reply> {
        let mut reply = ReplyReader::default();
        let mut buf = Vec::with_capacity(4096);
        let mut chunk = [0u8; 8192];
        // Acknowledgements (of the server's settings, of pings) go out only
        // before the client waits: when the reply is already in, they would
        // only wake the server for nothing.
        let mut answers = Vec::new();
        // Past the deadline: how much of what had come in by then is unread.
        let mut left_in: Option<usize> = None;
        loop {
            // Whole frames first; then read more.
            if let Some(done) = reply.frames(&mut buf, &mut answers)? {
                return Ok(done);
            }
            if left_in.is_none() && !answers.is_empty() {
                match write_by(&mut self.stream, &answers, self.deadline) {
                    // Out of time: what has come in may still hold the reply.
                    Err(e) if !is_timeout(&e) => return Err(e),
                    _ => {}
                }
            }
            answers.clear();
            let left = self.deadline.saturating_duration_since(Instant::now());
            let mut want = chunk.len();
            if left.is_zero() {
                // Only what had come in when the deadline passed is read,
                // never more: a server that keeps sending cannot keep the
                // caller past it.
                let unread = match left_in {
                    Some(unread) => unread,
                    None => {
                        self.stream.set_nonblocking(true)?;
                        bytes_waiting(&self.stream)?
                    }
                };
                if unread == 0 {
                    return Err(self.timed_out());
                }
                want = want.min(unread);
                left_in = Some(unread);
            } else {
                self.stream.set_read_timeout(Some(left))?;
            }
            let n = match self.stream.read(&mut chunk[..want]) {
                Ok(0) => {
                    return Err(bad(
                        "the server closed the connection before the call's end",
                    ));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.relabel(e)),
            };
            if let Some(unread) = &mut left_in {
                *unread -= n.min(*unread);
            }
            reply.received += n;
            if reply.received > MAX_REPLY {
                return Err(bad("the reply is larger than 16 MiB"));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// How many bytes the socket holds unread (`FIONREAD`).
fn bytes_waiting(stream: &UnixStream) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer, which is valid.
    let rc = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(stream),
            libc::FIONREAD,
            &mut n,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Writes all of `bytes` by `deadline`: each write may wait only for the
/// time left, so a server that stops reading cannot stretch the call.
fn write_by(stream: &mut UnixStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A socket timeout surfaces as WouldBlock (EAGAIN) or TimedOut.
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Connects within `timeout`: a server that stopped accepting fills its
/// listen queue, and a plain `connect` would then wait for it forever (on a
/// Unix socket, `connect` waits as long as the socket's send timeout).
fn connect(socket: &Path, timeout: Duration) -> io::Result<UnixStream> {
    use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr, sockopt};
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // A zero timeval would mean "no timeout": at least one microsecond.
    let timeout = timeout.max(Duration::from_micros(1));
    let timeval =
        nix::sys::time::TimeVal::new(timeout.as_secs() as _, timeout.subsec_micros() as _);
    socket::setsockopt(&fd, sockopt::SendTimeout, &timeval)?;
    let addr = UnixAddr::new(socket)?;
    match socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr) {
        Ok(()) => Ok(UnixStream::from(fd)),
        Err(nix::errno::Errno::EAGAIN) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("not accepted within {timeout:?} (the server's listen queue is full)"),
        )),
        Err(e) => Err(e.into()),
    }
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// Everything the client sends: the preface, its settings (no push; a
/// stream and connection window as large as the biggest reply read, so
/// that the server never waits for a window update; the header list
/// limit), the request's headers and its message, which ends the stream.
fn request(call: &Call, timeout: Duration) -> io::Result<Vec<u8>> {
    let window = MAX_REPLY as u32;
    let mut out = PREFACE.to_vec();
    let mut settings = Vec::new();
    for (id, value) in [(0x2u16, 0u32), (0x4, window), (0x6, MAX_HEADER_LIST as u32)] {
        settings.extend_from_slice(&id.to_be_bytes());
        settings.extend_from_slice(&value.to_be_bytes());
    }
    frame(&mut out, SETTINGS, 0, 0, &settings);
    frame(
        &mut out,
        WINDOW_UPDATE,
        0,
        0,
        &(window - 65_535).to_be_bytes(),
    );

    // HPACK (RFC 7541): static-table entries and literals without indexing.
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http
    let millis = timeout.as_millis().clamp(1, 99_999_999).to_string() + "m";
    let fields = [
        (Some(4), ":path", call.path),
        (Some(1), ":authority", "localhost"),
        (Some(31), "content-type", "application/grpc"),
        (None, "te", "trailers"),
        (None, "grpc-timeout", millis.as_str()),
    ];
    let metadata = call.metadata.iter().map(|(n, v)| (None, *n, *v));
    for (index, name, value) in fields.into_iter().chain(metadata) {
        let valid = |s: &str| s.bytes().all(|b| (0x20..0x7f).contains(&b));
        if !valid(name) || !valid(value) || name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad(&format!("header {name:?}: {value:?} cannot be sent")));
        }
        match index {
            Some(i) => integer(&mut block, 4, 0x00, i),
            None => {
                block.push(0x00);
                string(&mut block, name);
            }
        }
        string(&mut block, value);
    }
    let mut message = vec![0];
    message.extend_from_slice(&(call.message.len() as u32).to_be_bytes());
    message.extend_from_slice(call.message);
    if block.len() > MAX_FRAME || message.len() > MAX_FRAME {
        return Err(bad("the request is larger than one frame"));
    }
    frame(&mut out, HEADERS, END_HEADERS, STREAM, &block);
    frame(&mut out, DATA, END_STREAM, STREAM, &message);
    Ok(out)
}

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541, 5.1).
fn integer(out: &mut Vec<u8>, n: u32, first: u8, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128 + 128) as u8);
        value /= 128;
    }
    out.push(value as u8);
}

/// An HPACK string literal, not Huffman-coded.
fn string(out: &mut Vec<u8>, s: &str) {
    integer(out, 7, 0x00, s.len());
    out.extend_from_slice(s.as_bytes());
}

struct Frame<'a> {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: &'a [u8],
}

/// The first whole frame in `buf` and its length, or None for more bytes.
fn parse_frame(buf: &[u8]) -> io::Result<Option<(Frame<'_>, usize)>> {
    if buf.len() < 9 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
    // The client never raises SETTINGS_MAX_FRAME_SIZE (RFC 9113, 4.2).
    if len > MAX_FRAME {
        return Err(bad(&format!(
            "a frame of {len} bytes (the limit is {MAX_FRAME})"
        )));
    }
    if buf.len() < 9 + len {
        return Ok(None);
    }
    let frame = Frame {
        kind: buf[3],
        flags: buf[4],
        stream: u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff,
        payload: &buf[9..9 + len],
    };
    Ok(Some((frame, 9 + len)))
}

/// The reply, as its frames arrive.
#[derive(Default)]
struct ReplyReader {
    decoder: crate::hpack::Decoder,
    /// A header block awaiting its CONTINUATION frames, and whether it ends
    /// the stream; while `continuing`, no other frame may come (RFC 9113, 6.10).
    block: Vec<u8>,
    block_ends_stream: bool,
    continuing: bool,
    headers_seen: bool,
    data: Vec<u8>,
    received: usize,
    done: Option<Reply>,
}

/// The reply in `bytes` (all a server sent), as [`Pending::reply`] reads it: None
/// while the call has not ended. For fuzzing.
pub fn reply_from_bytes(bytes: &[u8]) -> io::Result<Option<Reply>> {
    ReplyReader::default().frames(&mut bytes.to_vec(), &mut Vec::new())
}

impl ReplyReader {
    /// Takes the whole frames at the start of `buf` (and removes them),
    /// adding what to send back to `answers`; the reply once the call ends.
    fn frames(&mut self, buf: &mut Vec<u8>, answers: &mut Vec<u8>) -> io::Result<Option<Reply>> {
        let mut at = 0;
        while let Some((frame, used)) = parse_frame(&buf[at..])? {
            answers.extend(self.frame(&frame)?);
            at += used;
            if let Some(done) = self.done.take() {
                return Ok(Some(done));
            }
        }
        buf.drain(..at);
        Ok(None)
    }

    /// Takes one frame; returns what to send back (acknowledgements).
    fn frame(&mut self, f: &Frame) -> io::Result<Vec<u8>> {
        let mut answer = Vec::new();
        if self.continuing != (f.kind == CONTINUATION && f.stream == STREAM) {
            return Err(bad(if self.continuing {
                "a header block interrupted by another frame"
            } else {
                "a CONTINUATION frame without a header block"
            }));
        }
        match f.kind {
            SETTINGS if f.flags & ACK == 0 => frame(&mut answer, SETTINGS, ACK, 0, &[]),
            PING if f.payload.len() != 8 => return Err(bad("a PING frame not of 8 bytes")),
            PING if f.flags & ACK == 0 => frame(&mut answer, PING, ACK, 0, f.payload),
            // Header blocks of other streams would change the decoder's
            // table; the server may open none (push is off).
            HEADERS | CONTINUATION if f.stream != STREAM => {
                return Err(bad("headers on a stream the client did not open"));
            }
            PUSH_PROMISE => return Err(bad("a PUSH_PROMISE (push is off)")),
            GOAWAY if self.done.is_none() => {
                let code = be_u32(f.payload, 4);
                let last = be_u32(f.payload, 0) & 0x7fff_ffff;
                if last < STREAM || code != 0 {
                    return Err(bad(&format!(
                        "the server ended the connection (GOAWAY, error code {code})"
                    )));
                }
            }
            RST_STREAM if f.stream == STREAM => {
                let code = be_u32(f.payload, 0);
                return Err(bad(&format!(
                    "the server reset the call (RST_STREAM, error code {code})"
                )));
            }
            DATA if f.stream == STREAM => {
                self.data.extend_from_slice(unpad(f)?);
                if f.flags & END_STREAM != 0 {
                    return Err(bad("the call ended without a status"));
                }
            }
            HEADERS if f.stream == STREAM => {
                let mut payload = unpad(f)?;
                if f.flags & PRIORITY != 0 {
                    payload = payload
                        .get(5..)
                        .ok_or_else(|| bad("a short HEADERS frame"))?;
                }
                self.block = payload.to_vec();
                self.block_ends_stream = f.flags & END_STREAM != 0;
                self.continuing = f.flags & END_HEADERS == 0;
                if !self.continuing {
                    self.header_block()?;
                }
            }
            CONTINUATION => {
                if self.block.len() + f.payload.len() > 2 * MAX_HEADER_LIST {
                    return Err(bad(
                        "a header block larger than twice the header list limit",
                    ));
                }
                self.block.extend_from_slice(f.payload);
                self.continuing = f.flags & END_HEADERS == 0;
                if !self.continuing {
                    self.header_block()?;
                }
            }
            _ => {}
        }
        Ok(answer)
    }

    /// A complete header block: the response headers, or (ending the
    /// stream) the trailers, which hold the status.
    fn header_block(&mut self) -> io::Result<()> {
        // Only the three fields a unary call's end needs are kept.
        let [mut status, mut grpc_status, mut grpc_message] = [None, None, None];
        let block = std::mem::take(&mut self.block);
        self.decoder
            .decode(&block, MAX_HEADER_LIST, |name, value| {
                let slot = match name {
                    b":status" => &mut status,
                    b"grpc-status" => &mut grpc_status,
                    b"grpc-message" => &mut grpc_message,
                    _ => return,
                };
                *slot = Some(String::from_utf8_lossy(value).into_owned());
            })
            .map_err(|e| bad(&format!("undecodable headers: {e}")))?;
        if !self.headers_seen {
            self.headers_seen = true;
            if let Some(status) = status.filter(|s| s != "200") {
                return Err(bad(&format!("HTTP status {status}")));
            }
        }
        if !self.block_ends_stream {
            return Ok(());
        }
        let code = grpc_status
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u32>().ok())
            .ok_or_else(|| bad("the call ended without a grpc-status"))?;
        self.done = Some(if code == 0 {
            Reply::Message(message(std::mem::take(&mut self.data))?)
        } else {
            Reply::Status {
                code,
                message: percent_decoded(&grpc_message.unwrap_or_default()),
            }
        });
        Ok(())
    }
}

/// The big-endian u32 at `at` in a frame's payload; 0 when the frame is too short.
fn be_u32(payload: &[u8], at: usize) -> u32 {
    payload
        .get(at..at + 4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// A frame's payload without its padding.
fn unpad<'a>(f: &Frame<'a>) -> io::Result<&'a [u8]> {
    if f.flags & PADDED == 0 {
        return Ok(f.payload);
    }
    let pad = *f
        .payload
        .first()
        .ok_or_else(|| bad("a short padded frame"))? as usize;
    f.payload
        .get(1..f.payload.len().saturating_sub(pad))
        .filter(|_| pad < f.payload.len())
        .ok_or_else(|| bad("padding longer than the frame"))
}

/// The one message of a unary reply: a 5-byte prefix (not compressed,
/// length) and the message.
fn message(mut data: Vec<u8>) -> io::Result<Vec<u8>> {
    if data.len() < 5 {
        return Err(bad("the call ended without a message"));
    }
    if data[0] != 0 {
        return Err(bad("a compressed message (none was asked for)"));
    }
    let len = be_u32(&data, 1) as usize;
    if data.len() - 5 != len {
        return Err(bad("the message's length does not match its prefix"));
    }
    data.drain(..5);
    Ok(data)
}

/// grpc-message is percent-encoded (gRPC over HTTP/2).
fn percent_decoded(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The name of a gRPC status code, as gRPC prints it.
pub fn code_name(code: u32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    NAMES.get(code as usize).copied().unwrap_or("Unknown")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    fn call() -> Call<'static> {
        Call {
            path: "/pkg.Service/Get",
            metadata: &[("containerd-namespace", "k8s.io")],
            message: b"\x0a\x03abc",
        }
    }

    /// A server that reads the request (what it returns), then hands the
    /// connection to `then`.
    fn serve_then(
        then: impl FnOnce(&mut UnixStream) + Send + 'static,
    ) -> (tempfile::TempDir, std::thread::JoinHandle<Vec<u8>>) {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("s")).unwrap();
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut got = vec![0u8; 4096];
            let n = s.read(&mut got).unwrap_or(0);
            got.truncate(n);
            then(&mut s);
            got
        });
        (dir, handle)
    }

    /// A server that reads the request, then writes `reply` (or nothing).
    /// How long `serve(None)` stays silent. The tests of deadlines allow
    /// [`SLOW`] past theirs (the aarch64 build runs them under qemu-user,
    /// several times slower), well short of this: a client that waited for
    /// the server would take all of it.
    const SILENCE: Duration = Duration::from_secs(6);
    const SLOW: Duration = Duration::from_secs(2);

    fn serve(reply: Option<Vec<u8>>) -> (tempfile::TempDir, std::thread::JoinHandle<Vec<u8>>) {
        serve_then(move |s| match reply {
            Some(r) => {
                let _ = s.write_all(&r);
                std::thread::sleep(Duration::from_millis(300));
            }
            None => std::thread::sleep(SILENCE),
        })
    }

    fn header_block(fields: &[(&str, &str)]) -> Vec<u8> {
        let mut block = Vec::new();
        for (n, v) in fields {
            block.push(0x00);
            string(&mut block, n);
            string(&mut block, v);
        }
        block
    }

    fn reply_frames(status: &str, message: Option<&[u8]>, grpc_message: &str) -> Vec<u8> {
        let mut out = Vec::new();
        frame(&mut out, SETTINGS, 0, 0, &[]);
        frame(&mut out, PING, 0, 0, &[1; 8]);
        let headers = header_block(&[(":status", "200"), ("content-type", "application/grpc")]);
        frame(&mut out, HEADERS, END_HEADERS, STREAM, &headers);
        if let Some(m) = message {
            let mut data = vec![0];
            data.extend_from_slice(&(m.len() as u32).to_be_bytes());
            data.extend_from_slice(m);
            // Padded, in two frames.
            let (a, b) = data.split_at(3);
            let mut padded = vec![2];
            padded.extend_from_slice(a);
            padded.extend_from_slice(&[0, 0]);
            frame(&mut out, DATA, PADDED, STREAM, &padded);
            frame(&mut out, DATA, 0, STREAM, b);
        }
        let trailers = header_block(&[("grpc-status", status), ("grpc-message", grpc_message)]);
        // Trailers split over a CONTINUATION frame.
        let (a, b) = trailers.split_at(5);
        frame(&mut out, HEADERS, END_STREAM, STREAM, a);
        frame(&mut out, CONTINUATION, END_HEADERS, STREAM, b);
        out
    }

    #[test]
    fn request_is_preface_settings_headers_and_message() {
        let bytes = request(&call(), Duration::from_millis(250)).unwrap();
        assert!(bytes.starts_with(PREFACE));
        let mut rest = &bytes[PREFACE.len()..];
        let mut kinds = Vec::new();
        let mut decoder = fluke_hpack::Decoder::new();
        while let Some((f, used)) = parse_frame(rest).unwrap() {
            kinds.push((f.kind, f.flags, f.stream));
            if f.kind == HEADERS {
                let fields = decoder.decode(f.payload).unwrap();
                let text: Vec<(String, String)> = fields
                    .into_iter()
                    .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
                    .collect();
                let want = [
                    (":method", "POST"),
                    (":scheme", "http"),
                    (":path", "/pkg.Service/Get"),
                    (":authority", "localhost"),
                    ("content-type", "application/grpc"),
                    ("te", "trailers"),
                    ("grpc-timeout", "250m"),
                    ("containerd-namespace", "k8s.io"),
                ];
                let want: Vec<(String, String)> = want
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect();
                assert_eq!(text, want);
            }
            if f.kind == DATA {
                assert_eq!(f.payload, b"\x00\x00\x00\x00\x05\x0a\x03abc");
            }
            if f.kind == SETTINGS {
                // ENABLE_PUSH 0, INITIAL_WINDOW_SIZE 16 MiB, MAX_HEADER_LIST_SIZE 64 KiB.
                let want =
                    b"\x00\x02\x00\x00\x00\x00\x00\x04\x01\x00\x00\x00\x00\x06\x00\x01\x00\x00";
                assert_eq!(f.payload, want);
            }
            if f.kind == WINDOW_UPDATE {
                assert_eq!(be_u32(f.payload, 0), (16 << 20) - 65_535);
            }
            rest = &rest[used..];
        }
        assert!(rest.is_empty());
        assert_eq!(
            kinds,
            [
                (SETTINGS, 0, 0),
                (WINDOW_UPDATE, 0, 0),
                (HEADERS, END_HEADERS, 1),
                (DATA, END_STREAM, 1)
            ]
        );
    }

    #[test]
    fn header_values_that_would_break_the_request_are_refused() {
        for (n, v) in [("containerd-namespace", "a\r\nx: y"), ("Upper", "v")] {
            let metadata = [(n, v)];
            let c = Call {
                metadata: &metadata,
                ..call()
            };
            assert!(request(&c, Duration::from_millis(10)).is_err(), "{n}: {v}");
        }
    }

    /// `send` returns once the request is out: the server answers only after
    /// the client has gone on (here: told it so), and the reply is still read.
    #[test]
    fn the_reply_is_read_after_the_caller_went_on() {
        let (went_on, told) = std::sync::mpsc::channel::<()>();
        let (dir, server) = serve_then(move |s| {
            // A client still inside `send` never says it went on.
            if told.recv_timeout(Duration::from_secs(2)).is_ok() {
                s.write_all(&reply_frames("0", Some(b"late"), "")).unwrap();
            }
        });
        let pending = send(&dir.path().join("s"), &call(), Duration::from_secs(5)).unwrap();
        went_on.send(()).unwrap();
        assert_eq!(pending.reply().unwrap(), Reply::Message(b"late".to_vec()));
        assert!(server.join().unwrap().starts_with(PREFACE));
    }

    /// A reply that came in while the caller worked past the deadline is
    /// still read; with nothing in, the call times out at once.
    #[test]
    fn past_the_deadline_only_what_came_in_counts() {
        let (written, in_socket) = std::sync::mpsc::channel::<()>();
        let (dir, server) = serve_then(move |s| {
            s.write_all(&reply_frames("0", Some(b"in time"), ""))
                .unwrap();
            written.send(()).unwrap();
            // Open until the client is done.
            s.set_read_timeout(None).unwrap();
            let _ = s.read(&mut [0u8; 64]);
        });
        let timeout = Duration::from_millis(100);
        let pending = send(&dir.path().join("s"), &call(), timeout).unwrap();
        in_socket.recv().unwrap();
        std::thread::sleep(timeout + Duration::from_millis(50));
        assert_eq!(
            pending.reply().unwrap(),
            Reply::Message(b"in time".to_vec())
        );
        server.join().unwrap();

        // serve(None) stays silent for SILENCE: a read that waited would wait for it.
        let (dir, _server) = serve(None);
        let pending = send(&dir.path().join("s"), &call(), timeout).unwrap();
        std::thread::sleep(timeout + Duration::from_millis(50));
        let t = Instant::now();
        let err = pending.reply().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(t.elapsed() < SLOW, "{:?}", t.elapsed());
    }

    #[test]
    fn message_and_status_replies() {
        let (dir, server) = serve(Some(reply_frames("0", Some(b"hello"), "")));
        let reply = unary(&dir.path().join("s"), &call(), Duration::from_secs(2)).unwrap();
        assert_eq!(reply, Reply::Message(b"hello".to_vec()));
        let sent = server.join().unwrap();
        assert!(sent.starts_with(PREFACE));

        let (dir, _server) = serve(Some(reply_frames("5", None, "container %22x%22 not found")));
        let reply = unary(&dir.path().join("s"), &call(), Duration::from_secs(2)).unwrap();
        assert_eq!(
            reply,
            Reply::Status {
                code: 5,
                message: "container \"x\" not found".into()
            }
        );
    }

    #[test]
    fn a_silent_server_times_out_and_garbage_is_an_error() {
        let (dir, _server) = serve(None);
        let t = Instant::now();
        let err = unary(&dir.path().join("s"), &call(), Duration::from_millis(100)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(t.elapsed() < SLOW, "{:?}", t.elapsed());

        let (dir, _server) = serve(Some(b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec()));
        let err = unary(&dir.path().join("s"), &call(), Duration::from_secs(2)).unwrap_err();
        assert!(
            err.to_string().contains("a frame of 4740180 bytes"),
            "{err}"
        );

        let mut reset = Vec::new();
        frame(&mut reset, RST_STREAM, 0, STREAM, &2u32.to_be_bytes());
        let (dir, _server) = serve(Some(reset));
        let err = unary(&dir.path().join("s"), &call(), Duration::from_secs(2)).unwrap_err();
        assert!(err.to_string().contains("RST_STREAM"), "{err}");
    }

    /// Replies that break HTTP/2 or HPACK are errors, not panics or
    /// unbounded decoding.
    #[test]
    fn malformed_header_blocks_are_errors() {
        let headers = header_block(&[(":status", "200")]);
        let mut big_entry = vec![0x40, 0x01, b'a', 0x7f, 0xa1, 0x1e]; // a value of 4000 bytes
        big_entry.extend(std::iter::repeat_n(b'x', 4000));
        let bomb: Vec<u8> = big_entry
            .into_iter()
            .chain(std::iter::repeat_n(0xbe, 12_000))
            .collect();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("truncated header block", {
                let mut out = Vec::new();
                frame(&mut out, HEADERS, END_HEADERS, STREAM, &[0x3f]);
                out
            }),
            ("header list larger than", {
                let mut out = Vec::new();
                frame(&mut out, HEADERS, END_HEADERS | END_STREAM, STREAM, &bomb);
                out
            }),
            ("interrupted by another frame", {
                let mut out = Vec::new();
                frame(&mut out, HEADERS, 0, STREAM, &headers[..2]);
                frame(&mut out, DATA, 0, STREAM, b"\0\0\0\0\0");
                frame(&mut out, CONTINUATION, END_HEADERS, STREAM, &headers[2..]);
                out
            }),
            ("CONTINUATION frame without", {
                let mut out = Vec::new();
                frame(&mut out, CONTINUATION, END_HEADERS, STREAM, &headers);
                out
            }),
            ("a stream the client did not open", {
                let mut out = Vec::new();
                frame(&mut out, HEADERS, END_HEADERS, 2, &headers);
                out
            }),
            ("PUSH_PROMISE", {
                let mut out = Vec::new();
                frame(
                    &mut out,
                    PUSH_PROMISE,
                    END_HEADERS,
                    STREAM,
                    &[0, 0, 0, 2, 0x88],
                );
                out
            }),
            ("without a grpc-status", {
                let mut out = Vec::new();
                let trailers = header_block(&[(":status", "200"), ("grpc-status", "+5")]);
                frame(
                    &mut out,
                    HEADERS,
                    END_HEADERS | END_STREAM,
                    STREAM,
                    &trailers,
                );
                out
            }),
            ("PING frame not of 8 bytes", {
                let mut out = Vec::new();
                frame(&mut out, PING, 0, 0, &[1; 3]);
                out
            }),
        ];
        for (want, reply) in cases {
            let (dir, _server) = serve(Some(reply));
            let err = unary(&dir.path().join("s"), &call(), Duration::from_secs(2)).unwrap_err();
            assert!(err.to_string().contains(want), "{want}: {err}");
        }
    }

    /// A server that sends and never reads: the client's acknowledgements
    /// fill the socket, and the call still ends at its deadline.
    #[test]
    fn a_server_that_stops_reading_times_out() {
        // Pings until the client has gone: each asks for an acknowledgement
        // that the server never reads, and past the deadline the client must
        // not keep reading what keeps coming.
        let mut pings = Vec::new();
        for _ in 0..4_000 {
            frame(&mut pings, PING, 0, 0, &[7; 8]);
        }
        let (dir, _server) = serve_then(move |s| while s.write_all(&pings).is_ok() {});
        let timeout = Duration::from_millis(150);
        let t = Instant::now();
        let err = unary(&dir.path().join("s"), &call(), timeout).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(t.elapsed() < timeout + SLOW, "{:?}", t.elapsed());
    }

    #[test]
    fn a_server_that_stops_accepting_times_out() {
        use nix::sys::socket::{self, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let fd = socket::socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::empty(),
            None,
        )
        .unwrap();
        socket::bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &UnixAddr::new(&path).unwrap(),
        )
        .unwrap();
        // A queue of one, never accepted: once it holds a connection, the
        // next connect waits.
        socket::listen(&fd, Backlog::new(0).unwrap()).unwrap();
        let first = connect(&path, Duration::from_millis(100)).unwrap();
        let t = Instant::now();
        let err = unary(&path, &call(), Duration::from_millis(100)).unwrap_err();
        assert!(err.to_string().contains("listen queue"), "{err}");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(t.elapsed() < SLOW, "{:?}", t.elapsed());
        drop(first);
    }

    #[test]
    fn message_framing() {
        assert_eq!(message(b"\x00\x00\x00\x00\x02hi".to_vec()).unwrap(), b"hi");
        assert!(message(b"\x00\x00\x00\x00\x03hi".to_vec()).is_err());
        assert!(message(b"\x01\x00\x00\x00\x02hi".to_vec()).is_err());
        assert!(message(Vec::new()).is_err());
        assert_eq!(percent_decoded("a%20b%zz%%+f"), "a b%zz%%+f");
        assert_eq!(code_name(5), "NotFound");
        assert_eq!(code_name(99), "Unknown");
    }
}
