//! Replacing a file so that readers and crashes only ever see the old or the
//! new content: a temporary file in the same directory, with the original's
//! mode and owner, written, fsynced, then renamed over the original; the
//! directory is fsynced so the rename itself survives a crash.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Reads at most `cap` bytes of `path`; a larger file is an error.
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>> {
    let file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut data = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut data)
        .with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(
        data.len() as u64 <= cap,
        "{} is larger than {} MiB",
        path.display(),
        cap >> 20
    );
    Ok(data)
}

/// Replaces `path` with `contents`, atomically.
pub fn replace(path: &Path, contents: &[u8]) -> Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    remove_stale_temps(path);
    let tmp = temp_path(path);
    let result = write_then_rename(path, &tmp, contents, &meta);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("rewriting {}", path.display()))
}

fn temp_prefix(path: &Path) -> String {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    format!(".{name}.strict-groups.")
}

fn temp_path(path: &Path) -> PathBuf {
    path.with_file_name(format!("{}{}.tmp", temp_prefix(path), std::process::id()))
}

/// Removes the temp files that killed wrappers left beside `path` (their
/// process is gone, or its id is ours again). Best effort.
fn remove_stale_temps(path: &Path) {
    let prefix = temp_prefix(path);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix.as_str()))
            .and_then(|n| n.strip_suffix(".tmp"))
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let gone = pid == std::process::id() as i32
            || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
                == Err(nix::errno::Errno::ESRCH);
        if gone {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn write_then_rename(
    path: &Path,
    tmp: &Path,
    contents: &[u8],
    meta: &std::fs::Metadata,
) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()))
        .context("setting owner")?;
    file.set_permissions(meta.permissions())
        .context("setting mode")?;
    fault_point("written-partially");
    file.write_all(contents).context("writing")?;
    fault_point("written");
    file.sync_all().context("fsync")?;
    fault_point("synced");
    std::fs::rename(tmp, path).context("renaming into place")?;
    fault_point("renamed");
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .context("fsync of the directory")?;
    }
    Ok(())
}

/// Crash-safety tests set `STRICT_GROUPS_TEST_CRASH_AT` to a step name: the
/// process then dies there, as a SIGKILL would leave it. Compiled only into
/// debug builds.
#[cfg(debug_assertions)]
fn fault_point(step: &str) {
    if std::env::var("STRICT_GROUPS_TEST_CRASH_AT").as_deref() == Ok(step) {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

#[cfg(not(debug_assertions))]
fn fault_point(_step: &str) {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn temp_files_of_dead_wrappers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(&p, "old").unwrap();
        // PID 0x7fffffff cannot exist; PID 1 is alive and keeps its file.
        let dead = dir.path().join(".config.json.strict-groups.2147483647.tmp");
        let alive = dir.path().join(".config.json.strict-groups.1.tmp");
        std::fs::write(&dead, "torn").unwrap();
        std::fs::write(&alive, "busy").unwrap();
        replace(&p, b"new").unwrap();
        assert!(!dead.exists());
        assert!(alive.exists());
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
    }

    #[test]
    fn replaces_keeping_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(&p, "old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        replace(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("config.json")]);
    }

    #[test]
    fn missing_file_and_cap() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("none.json");
        assert!(replace(&p, b"x").is_err());
        assert!(!p.exists());
        std::fs::write(&p, vec![b' '; 2048]).unwrap();
        assert!(read_capped(&p, 2047).is_err());
        assert_eq!(read_capped(&p, 2048).unwrap().len(), 2048);
    }
}
