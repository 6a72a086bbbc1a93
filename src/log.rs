//! What the wrapper writes for others to read: errors in the runtime's
//! `--log` file (where containerd and CRI-O look for a failed runtime's
//! reason, which the kubelet then shows in `kubectl describe pod`), and one
//! line per decision.
//!
//! Lines follow the runtime's `--log-format`: JSON (`{"level":..,"msg":..,
//! "time":..}`, the format runc's logrus writes and containerd parses) or
//! logrus' text format. Writes are single `write(2)` calls to a file opened
//! with `O_APPEND`, so concurrent writers never interleave within a line.

use std::cell::OnceCell;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

/// Every message the wrapper writes starts with this.
pub const PREFIX: &str = "strict-groups: ";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Text,
}

impl Format {
    /// runc's default is text; containerd and CRI-O ask for JSON.
    pub fn from_flag(flag: Option<&str>) -> Format {
        match flag {
            Some("json") => Format::Json,
            _ => Format::Text,
        }
    }
}

/// The runtime's `--log` file and `--log-format`, as the caller gave them.
/// The file is opened once, by [`Target::open`] or at the first line, and
/// every line of the run goes through that descriptor (closed at the exec).
#[derive(Debug)]
pub struct Target {
    pub path: Option<PathBuf>,
    pub format: Format,
    file: OnceCell<File>,
}

impl Target {
    pub fn new(path: Option<PathBuf>, format: Format) -> Target {
        Target {
            path,
            format,
            file: OnceCell::new(),
        }
    }

    /// Opens the `--log` file now (it is created as runc does), so that a
    /// file that cannot be opened is known before anything is changed.
    pub fn open(&self) -> std::io::Result<()> {
        self.file().map(drop)
    }

    fn file(&self) -> std::io::Result<Option<&File>> {
        let Some(path) = &self.path else {
            return Ok(None);
        };
        if let Some(file) = self.file.get() {
            return Ok(Some(file));
        }
        let file = open_for_append(path)?;
        Ok(Some(self.file.get_or_init(|| file)))
    }

    /// Appends one line; a `--log` that cannot be written is reported on stderr.
    pub fn write(&self, level: &str, msg: &str, fields: &Map<String, Value>) {
        self.write_line(&line(self.format, level, msg, fields));
    }

    /// Appends a line made by [`line`] in this target's format.
    pub fn write_line(&self, line: &str) {
        let written = self
            .file()
            .and_then(|file| file.map_or(Ok(()), |mut f| f.write_all(line.as_bytes())));
        if let (Err(e), Some(path)) = (written, &self.path) {
            to_stderr(&format!(
                "{PREFIX}cannot write to log {}: {e}",
                path.display()
            ));
        }
    }

    /// A warning: in `--log`, in syslog and on stderr.
    pub fn warn(&self, msg: &str) {
        let msg = format!("{PREFIX}warning: {msg}");
        self.write("warning", &msg, &Map::new());
        syslog(4, &msg);
        to_stderr(&msg);
    }
}

/// Writes `msg` and a newline to stderr in one `write(2)` (`eprintln!`
/// makes two), so that lines of concurrent writers do not interleave.
pub fn to_stderr(msg: &str) {
    let mut line = String::with_capacity(msg.len() + 1);
    line.push_str(msg);
    line.push('\n');
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// One log line: level, message and extra fields, in this order.
pub fn line(format: Format, level: &str, msg: &str, fields: &Map<String, Value>) -> String {
    let time = rfc3339_now();
    let mut s = String::with_capacity(256);
    match format {
        Format::Json => {
            // The object written field by field: the same bytes as a Map
            // serialised, without copying every field into one first.
            let _ = write!(
                s,
                "{{\"level\":{},\"msg\":{},\"time\":\"{time}\"",
                Value::from(level),
                Value::from(msg)
            );
            for (k, v) in fields {
                if k != "level" && k != "msg" && k != "time" {
                    let _ = write!(s, ",{}:{v}", Value::from(k.as_str()));
                }
            }
            s.push('}');
        }
        Format::Text => {
            // logrus text: time="..." level=error msg="..." key=value
            let _ = write!(s, "time={time:?} level={level} msg={}", Value::from(msg));
            for (k, v) in fields {
                let _ = write!(s, " {k}={v}");
            }
        }
    }
    s.push('\n');
    s
}

/// Opens the runtime log file for appending, creating it as runc does.
pub fn open_for_append(path: &Path) -> std::io::Result<std::fs::File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
}

/// Sends `msg` to the local syslog socket (journald on systemd nodes reads
/// it), tagged `strict-groups`. Best effort: a node without a syslog daemon
/// loses nothing else, and the send never blocks. One socket per process,
/// connected at the first message.
pub fn syslog(severity: u8, msg: &str) {
    const FACILITY_DAEMON: u8 = 3;
    static SOCKET: OnceLock<Option<(UnixDatagram, u32)>> = OnceLock::new();
    let connected = SOCKET.get_or_init(|| {
        let sock = UnixDatagram::unbound().ok()?;
        sock.set_nonblocking(true).ok()?;
        sock.connect("/dev/log").ok()?;
        Some((sock, std::process::id()))
    });
    let Some((sock, pid)) = connected else {
        return;
    };
    let packet = format!(
        "<{}>strict-groups[{pid}]: {msg}",
        FACILITY_DAEMON * 8 + severity
    );
    let _ = sock.send(packet.as_bytes());
}

/// The current UTC time as RFC 3339 with nanoseconds, like Go's
/// `time.RFC3339Nano` that runc's logs use.
pub fn rfc3339_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs() as i64, now.subsec_nanos())
}

fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn time_format() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1_795_600_333, 0), "2026-11-25T09:52:13.000000000Z");
    }

    #[test]
    fn json_line_is_what_containerd_parses() {
        let mut fields = Map::new();
        fields.insert("container".into(), json!("abc"));
        let l = line(Format::Json, "error", "strict-groups: x \"y\"", &fields);
        assert!(l.ends_with('\n') && l.matches('\n').count() == 1);
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "strict-groups: x \"y\"");
        assert_eq!(v["container"], "abc");
        assert!(l.starts_with("{\"level\":\"error\",\"msg\":"));
    }

    #[test]
    fn json_line_is_the_fields_serialised_in_order() {
        let mut fields = Map::new();
        fields.insert("b\"key".into(), json!([1, 2]));
        fields.insert("a".into(), json!({"x": null, "y": "\u{1}é"}));
        fields.insert("n".into(), json!(-1.5));
        let l = line(Format::Json, "info", "m", &fields);
        let time = l
            .split("\"time\":\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let mut expected = Map::new();
        expected.insert("level".into(), json!("info"));
        expected.insert("msg".into(), json!("m"));
        expected.insert("time".into(), json!(time));
        expected.extend(fields);
        assert_eq!(l, format!("{}\n", Value::Object(expected)));
    }

    #[test]
    fn one_descriptor_for_every_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.json");
        let target = Target::new(Some(path.clone()), Format::Json);
        target.open().unwrap();
        // Renamed away after the open: the lines still reach the file opened.
        std::fs::rename(&path, dir.path().join("moved")).unwrap();
        target.write("info", "one", &Map::new());
        target.write("info", "two", &Map::new());
        let text = std::fs::read_to_string(dir.path().join("moved")).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(!path.exists());
        let nowhere = Target::new(Some(dir.path().join("no/such/dir/log")), Format::Text);
        assert!(nowhere.open().is_err());
    }

    #[test]
    fn text_line() {
        let l = line(Format::Text, "error", "strict-groups: a\nb", &Map::new());
        assert!(l.starts_with("time=\""), "{l}");
        assert!(
            l.ends_with(" level=error msg=\"strict-groups: a\\nb\"\n"),
            "{l}"
        );
    }
}
