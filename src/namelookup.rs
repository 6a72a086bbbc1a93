//! runc before 1.3 looks each numeric `additionalGids` entry up *by name* in
//! the container's `/etc/group` (libcontainer's `GetAdditionalGroups`): an
//! image with a group named `1000` whose gid is 0 turns a kept gid 1000 into
//! group 0, after the wrapper has decided (measured on runc 1.1.5). crun and
//! youki use the numbers as they are.
//!
//! So before a runtime with this look-up starts a process, the wrapper reads
//! the image's `/etc/group` as runc will and refuses when the groups runc
//! would give differ from the gids decided. Which runtime it is comes from its
//! `--version`, run once per runtime binary and cached under
//! [`STATE_DIR`] by the binary's identity (device, inode, size, times): no
//! subprocess on the path of each create.

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::declared::IMAGE_FILE_CAP;
use crate::groups;
use crate::rootfs;
use crate::spec::Config;

/// Where the wrapper caches what it learnt of runtime binaries (root only).
pub const STATE_DIR: &str = "/run/strict-groups";

/// How long `RUNTIME --version` may take before the runtime counts as unknown.
const VERSION_TIMEOUT: Duration = Duration::from_secs(2);

/// Does the runtime resolve `additionalGids` by name? True for runc before
/// 1.3 and for any runtime whose version cannot be told (fail closed).
pub fn runtime_looks_up_names(runtime: &Path) -> bool {
    looks_up_names(&version_text(runtime))
}

/// Decides from a runtime's `--version` output.
pub fn looks_up_names(version: &str) -> bool {
    for line in version.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("runc version ") {
            return match crate::doctor::parse_version(rest) {
                Some(v) => v < (1, 3),
                None => true,
            };
        }
        if line.starts_with("crun version ") || line.starts_with("youki version ") {
            return false;
        }
    }
    true
}

/// The runtime's `--version` output, from the cache or by running it once.
pub fn version_text(runtime: &Path) -> String {
    let Ok(meta) = std::fs::metadata(runtime) else {
        return String::new();
    };
    let key = format!(
        "runtime-{}-{}-{}-{}.{}-{}.{}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    );
    let dir = trusted_state_dir();
    if let Some(dir) = &dir
        && let Ok(text) = std::fs::read_to_string(dir.join(&key))
    {
        return text;
    }
    let text = run_version(runtime);
    if let Some(dir) = &dir {
        let tmp = dir.join(format!(".{key}.{}", std::process::id()));
        if std::fs::write(&tmp, &text).is_ok() && std::fs::rename(&tmp, dir.join(&key)).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    text
}

/// The state directory, created 0700; None when it is not root's alone (its
/// content would then decide nothing).
fn trusted_state_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(STATE_DIR);
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    let private = meta.is_dir()
        && meta.uid() == nix::unistd::geteuid().as_raw()
        && meta.permissions().mode() & 0o022 == 0;
    private.then_some(dir)
}

fn run_version(runtime: &Path) -> String {
    let Ok(mut child) = Command::new(runtime)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    else {
        return String::new();
    };
    let deadline = Instant::now() + VERSION_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return String::new();
            }
        }
    }
    let mut out = String::new();
    if let Some(stdout) = child.stdout.take() {
        let _ = stdout.take(64 << 10).read_to_string(&mut out);
    }
    out
}

/// Refuses when runc's look-up in the container's `/etc/group` would give
/// the process other groups than `gids`, or when a mount of the spec hides
/// the image's `/etc/group` (the pod's volume would then decide).
pub fn check(root: &Path, config: &Config, gids: &[u32]) -> Result<()> {
    if let Some(dest) = config
        .mount_destinations
        .iter()
        .find(|d| covers_etc_group(d))
    {
        bail!(
            "a mount at {dest:?} replaces the image's /etc/group, in which the runtime (runc before \
             1.3) looks the gids up by name: strict-groups cannot check the groups the process \
             would get; use runc 1.3+ or crun on this node, or do not mount over /etc/group"
        );
    }
    let group = rootfs::read_in_root(root, "/etc/group", IMAGE_FILE_CAP).map_err(|e| {
        anyhow::anyhow!(
            "reading the image's /etc/group, in which the runtime (runc before 1.3) looks the \
             gids up by name: {e}"
        )
    })?;
    let Some(got) = groups::runc_additional_groups(group.as_deref(), gids) else {
        // runc refuses these gids itself.
        return Ok(());
    };
    let wanted: BTreeSet<i64> = gids.iter().map(|&g| i64::from(g)).collect();
    if got != wanted {
        let show = |s: &BTreeSet<i64>| s.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        bail!(
            "the image's /etc/group names groups after the gids {}: the runtime (runc before 1.3) \
             looks gids up by name there and would give the process the groups {} instead; \
             use runc 1.3+ or crun on this node, or fix the image",
            show(&wanted),
            show(&got)
        );
    }
    Ok(())
}

/// Is `dest` (a mount destination inside the container) `/etc/group` or one
/// of its directories?
fn covers_etc_group(dest: &str) -> bool {
    let mut parts: Vec<&str> = Vec::new();
    for p in dest.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let target = ["etc", "group"];
    parts.len() <= target.len() && parts.iter().zip(target).all(|(a, b)| *a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_runtimes_look_up_names() {
        assert!(looks_up_names(
            "runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\ngo: go1.19.8"
        ));
        assert!(looks_up_names("runc version 1.2.9\n"));
        assert!(!looks_up_names("runc version 1.3.0\n"));
        assert!(!looks_up_names("crun version 1.8.1\ncommit: abc\n"));
        assert!(!looks_up_names("youki version 0.7.0\n"));
        // nvidia-container-runtime prints runc's version after its own.
        assert!(looks_up_names(
            "NVIDIA Container Runtime version 1.14.3\ncommit: x\n\nrunc version 1.1.12\n"
        ));
        assert!(looks_up_names(""));
        assert!(looks_up_names("something else 9.9\n"));
    }

    #[test]
    fn mounts_over_etc_group() {
        for d in [
            "/",
            "/etc",
            "/etc/",
            "/etc/group",
            "//etc/./group",
            "/x/../etc/group",
            "/..",
        ] {
            assert!(covers_etc_group(d), "{d}");
        }
        for d in [
            "/etc/hosts",
            "/etcx",
            "/data",
            "/etc/group.d",
            "/etc/group/x",
        ] {
            assert!(!covers_etc_group(d), "{d}");
        }
    }
}
