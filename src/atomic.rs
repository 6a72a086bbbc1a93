//! Replacing a file so that readers and crashes only ever see the old or the
//! new content: a temporary file in the same directory, with the original's
//! mode and owner, written, fsynced, then renamed over the original; the
//! directory is fsynced so the rename itself survives a crash.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode};
use nix::unistd::UnlinkatFlags;

use anyhow::{Context, Result};

/// Reads at most `cap` bytes of `path`; a larger file is an error.
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>> {
    let file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    // Room for the whole file as it is now, and one byte to see its end: two
    // reads, where a growing buffer takes one per doubling.
    let size = file.metadata().map_or(0, |m| m.len()).min(cap);
    let mut data = Vec::with_capacity(size as usize + 1);
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
    let (dir_path, name) = split(path);
    // Every step is relative to the directory, opened once: no path is
    // walked again, and the directory synced is the one renamed in.
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_DIRECTORY)
        .open(dir_path)
        .with_context(|| format!("opening the directory of {}", path.display()))?;
    let meta = nix::sys::stat::fstatat(Some(dir.as_raw_fd()), name, AtFlags::empty())
        .with_context(|| format!("reading {}", path.display()))?;
    remove_stale_temps(&dir, name);
    let tmp = temp_name(name);
    let result = write_then_rename(&dir, name, &tmp, contents, &meta);
    if result.is_err() {
        let _ = nix::unistd::unlinkat(
            Some(dir.as_raw_fd()),
            tmp.as_str(),
            UnlinkatFlags::NoRemoveDir,
        );
    }
    result.with_context(|| format!("rewriting {}", path.display()))
}

/// The directory holding `path` and its file name.
fn split(path: &Path) -> (&Path, &OsStr) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    (dir, path.file_name().unwrap_or_default())
}

fn temp_prefix(name: &OsStr) -> String {
    format!(".{}.strict-groups.", name.to_string_lossy())
}

fn temp_name(name: &OsStr) -> String {
    format!("{}{}.tmp", temp_prefix(name), std::process::id())
}

/// Removes the temp files that killed wrappers left beside `name` in `dir`
/// (their process is gone, or its id is ours again). Best effort.
fn remove_stale_temps(dir: &File, name: &OsStr) {
    let prefix = temp_prefix(name);
    for_each_name(dir, |entry| {
        let Some(pid) = std::str::from_utf8(entry)
            .ok()
            .and_then(|n| n.strip_prefix(prefix.as_str()))
            .and_then(|n| n.strip_suffix(".tmp"))
            .and_then(|n| n.parse::<i32>().ok())
        else {
            return;
        };
        let gone = pid == std::process::id() as i32
            || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
                == Err(nix::errno::Errno::ESRCH);
        if gone {
            let _ = nix::unistd::unlinkat(
                Some(dir.as_raw_fd()),
                OsStr::from_bytes(entry),
                UnlinkatFlags::NoRemoveDir,
            );
        }
    });
}

/// Calls `f` with the name of each entry of the directory `dir`, read with
/// `getdents64` on the descriptor already held: a directory stream would
/// open it again, and musl maps a buffer for each.
fn for_each_name(dir: &File, mut f: impl FnMut(&[u8])) {
    // linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, then
    // the NUL-terminated name; records are 8-byte aligned.
    let mut buf = [0u64; 512];
    loop {
        // SAFETY: the kernel writes at most the buffer's size into it.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                buf.as_mut_ptr(),
                std::mem::size_of_val(&buf),
            )
        };
        if n <= 0 {
            return;
        }
        // SAFETY: plain bytes of the buffer, of which the kernel filled `n`.
        let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n as usize) };
        let mut at = 0;
        while at + 19 <= bytes.len() {
            let len = usize::from(u16::from_ne_bytes([bytes[at + 16], bytes[at + 17]]));
            if len < 19 || at + len > bytes.len() {
                return;
            }
            let name = &bytes[at + 19..at + len];
            f(&name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())]);
            at += len;
        }
    }
}

fn write_then_rename(
    dir: &File,
    name: &OsStr,
    tmp: &str,
    contents: &[u8],
    meta: &FileStat,
) -> Result<()> {
    let fd = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        tmp,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .with_context(|| format!("creating {tmp}"))?;
    // SAFETY: openat returned a new descriptor that nothing else owns.
    let mut file = unsafe { File::from_raw_fd(fd) };
    std::os::unix::fs::fchown(&file, Some(meta.st_uid), Some(meta.st_gid))
        .context("setting owner")?;
    file.set_permissions(std::fs::Permissions::from_mode(meta.st_mode & 0o7777))
        .context("setting mode")?;
    fault_point("written-partially");
    file.write_all(contents).context("writing")?;
    fault_point("written");
    file.sync_all().context("fsync")?;
    fault_point("synced");
    nix::fcntl::renameat(Some(dir.as_raw_fd()), tmp, Some(dir.as_raw_fd()), name)
        .context("renaming into place")?;
    fault_point("renamed");
    dir.sync_all().context("fsync of the directory")?;
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

    /// Every name, over many `getdents64` calls (1000 entries of up to 200
    /// bytes, some not UTF-8), as the directory stream of std lists them.
    #[test]
    fn every_name_of_a_large_directory() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..1000 {
            let mut name = format!("{i}-{}", "n".repeat(i % 200)).into_bytes();
            if i % 7 == 0 {
                name.push(0xff);
            }
            std::fs::write(dir.path().join(OsStr::from_bytes(&name)), "").unwrap();
        }
        let mut ours = Vec::new();
        for_each_name(&File::open(dir.path()).unwrap(), |n| ours.push(n.to_vec()));
        let mut std_names: Vec<Vec<u8>> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().as_bytes().to_vec())
            .chain([b".".to_vec(), b"..".to_vec()])
            .collect();
        ours.sort();
        std_names.sort();
        assert_eq!(ours.len(), 1002);
        assert_eq!(ours, std_names);
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
