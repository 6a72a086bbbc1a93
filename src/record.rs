//! The decision record: one structured line per decision, for operators.
//!
//! Written to the runtime's `--log` file (level info; containerd keeps it in
//! the bundle while the container exists), to syslog (tag `strict-groups`;
//! journald on systemd nodes, size-bounded by it), and, when the node config
//! names one, to a JSON-lines file rotated to `<file>.1` beyond a size.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::caller::Caller;
use crate::config::{Mode, NodeConfig};
use crate::log::{self, Format};
use crate::policy::{Decision, PolicyChoice};
use crate::spec::Config;

/// The `msg` of every decision line.
pub const DECISION_MSG: &str = "strict-groups: decision";

/// What one decision is about, and what was decided.
pub struct Record<'a> {
    pub action: &'a str,
    pub container_id: &'a str,
    pub config: &'a Config,
    /// Whose annotations name the pod (no one else's are believed).
    pub caller: Caller,
    pub choice: Option<PolicyChoice>,
    pub mode: Mode,
    pub source: &'a str,
    pub note: Option<&'a str>,
    pub decision: &'a Decision,
}

impl Record<'_> {
    /// The fields of the line, in a fixed order.
    pub fn fields(&self) -> Map<String, Value> {
        let own = |key: fn(&crate::caller::Keys) -> &'static str| self.caller.own(self.config, key);
        let namespace = own(|k| k.pod_namespace);
        let pod = own(|k| k.pod_name);
        let container_name = own(|k| k.container_name);
        let mut f = Map::new();
        f.insert("action".into(), json!(self.action));
        f.insert("mode".into(), json!(self.mode.to_string()));
        f.insert("node".into(), json!(node_name()));
        f.insert("pod".into(), json!(format!("{namespace}/{pod}")));
        f.insert("pod_namespace".into(), json!(namespace));
        f.insert("pod_name".into(), json!(pod));
        f.insert("pod_uid".into(), json!(own(|k| k.pod_uid)));
        f.insert("container".into(), json!(self.container_id));
        f.insert("container_name".into(), json!(container_name));
        f.insert("image".into(), json!(own(|k| k.image)));
        f.insert("caller".into(), json!(self.caller.to_string()));
        if let Some(choice) = self.choice {
            f.insert("policy".into(), json!(choice.effective.to_string()));
            if choice.merge_refused {
                f.insert("merge_refused".into(), json!(true));
            }
        }
        f.insert("source".into(), json!(self.source));
        if let Some(note) = self.note {
            f.insert("note".into(), json!(note));
        }
        f.insert("kept".into(), json!(self.decision.kept));
        f.insert("removed".into(), json!(self.decision.removed));
        f.insert(
            "summary".into(),
            json!(self.summary(namespace, pod, container_name)),
        );
        f
    }

    /// "would remove 50000 from pod ns/name container c" (audit) or
    /// "removed ..." (enforce) or "nothing to remove ...".
    fn summary(&self, namespace: &str, pod: &str, container: &str) -> String {
        let target = format!("pod {namespace}/{pod} container {container}");
        let gids = self
            .decision
            .removed
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        match (self.decision.removed.is_empty(), self.mode) {
            (true, _) => format!("nothing to remove from {target}"),
            (false, Mode::Audit) => format!("would remove {gids} from {target}"),
            (false, Mode::Enforce) => format!("removed {gids} from {target}"),
        }
    }

    /// Writes the line everywhere it goes. Never fails the container: a
    /// decision log that cannot be written is reported in `--log`.
    pub fn write(&self, target: &log::Target, node: &NodeConfig) {
        let fields = self.fields();
        let json_line = log::line(Format::Json, "info", DECISION_MSG, &fields);
        match target.format {
            Format::Json => target.write_line(&json_line),
            Format::Text => target.write("info", DECISION_MSG, &fields),
        }
        log::syslog(6, &json_line);
        let Some(file) = &node.decision_log else {
            return;
        };
        if let Err(e) = append_rotating(file, &json_line, node.decision_log_max_bytes) {
            target.warn(&format!(
                "cannot write the decision log {}: {e}",
                file.display()
            ));
        }
    }
}

/// The node's name as the kubelet defaults it: the host name (uname(2):
/// one system call).
fn node_name() -> String {
    nix::unistd::gethostname()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The rotated file beside `path`.
pub fn rotated(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".1");
    PathBuf::from(s)
}

/// Appends `line` to `path`, first moving a file that would grow beyond
/// `max` bytes to `<path>.1`. Many wrappers run at once: an exclusive
/// `flock` serializes them, and a writer that finds its file rotated under
/// it opens the new one.
pub fn append_rotating(path: &Path, line: &str, max: u64) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    for _ in 0..8 {
        let mut file = open_append(path)?;
        // SAFETY: a valid open descriptor; the lock goes with it on close.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let held = file.metadata()?;
        match std::fs::metadata(path) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {}
            _ => continue, // rotated while we waited for the lock
        }
        if held.len() > 0 && held.len() + line.len() as u64 > max {
            std::fs::rename(path, rotated(path))?;
            continue;
        }
        return file.write_all(line.as_bytes());
    }
    Err(io::Error::other("the file kept being rotated"))
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_beyond_the_size_and_keeps_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/decisions.log");
        let line = format!("{}\n", "x".repeat(99));
        for _ in 0..25 {
            append_rotating(&path, &line, 1000).unwrap();
        }
        let current = std::fs::read_to_string(&path).unwrap();
        let old = std::fs::read_to_string(rotated(&path)).unwrap();
        assert!(current.len() <= 1000 && old.len() <= 1000);
        assert_eq!(old.len(), 1000);
        assert_eq!(current.len(), 500);
        assert!(current.lines().chain(old.lines()).all(|l| l.len() == 99));
    }

    #[test]
    fn concurrent_writers_lose_no_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.log");
        std::thread::scope(|s| {
            for t in 0..4 {
                let path = &path;
                s.spawn(move || {
                    for i in 0..100 {
                        append_rotating(path, &format!("{t}-{i:04}\n"), 1 << 20).unwrap();
                    }
                });
            }
        });
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 400);
        assert!(text.lines().all(|l| l.len() == 6));
    }
}
