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
use crate::rootfs::{Rootfs, RootfsError};
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
    let meta = match std::fs::symlink_metadata(&dir) {
        Ok(meta) => meta,
        Err(_) => {
            let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
            std::fs::symlink_metadata(&dir).ok()?
        }
    };
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

/// Does now the reads of [`check`] (the rootfs handle keeps them: where
/// `/etc/group` and each mount destination resolve, each step's `lstat` and
/// ACL, the file's bytes), so that the check after containerd's answer reads
/// again only the `lstat` of the image's root; the wrapper does this while
/// containerd answers its question. With no gids the check may stop at
/// another step than the check with the real gids (the groups decide who
/// may write, and an ACL's entry for others counts only for a process in
/// none of its groups); what it did not read, that check reads then. Its
/// verdict is left to that check.
pub fn prefetch(rootfs: &Rootfs, config: &Config) {
    let _ = check(rootfs, config, &[]);
}

/// Refuses when runc's look-up in the container's `/etc/group` would give
/// the process other groups than `gids`, or when a mount of the spec may
/// replace what runc reads there (the pod's volume would then decide): a
/// mount whose destination, resolved in the image as runc resolves it, is a
/// directory or symlink that the image's `/etc/group` resolves through.
///
/// A process that can write the file (or a directory on its way) could
/// change it between this check and runc's read, as an exec probe runs again
/// and again: that is refused too, for any process but uid 0 (which can do
/// this to any file, and which a pod runs only where it trusts the image).
pub fn check(rootfs: &Rootfs, config: &Config, gids: &[u32]) -> Result<()> {
    let unreadable = |e: RootfsError| {
        anyhow::anyhow!(
            "resolving /etc/group in the image, in which the runtime (runc before 1.3) looks \
             the gids up by name: {e}"
        )
    };
    let group_path = rootfs.resolve("/etc/group").map_err(unreadable)?;
    for dest in &config.mount_destinations {
        let resolved = rootfs.resolve(dest).map_err(unreadable)?;
        if let Some(hit) = group_path
            .visited
            .iter()
            .find(|v| v.starts_with(&resolved.path))
        {
            let hit = hit.display();
            bail!(
                "a mount at {dest:?} replaces {hit} in the image, through which /etc/group \
                 resolves; the runtime (runc before 1.3) looks the gids up by name there: \
                 strict-groups cannot check the groups the process would get; use runc 1.3+ \
                 or crun on this node, or do not mount over /etc/group"
            );
        }
    }
    let user = &config.user;
    if user.uid != 0
        && let Some(step) = std::iter::once(Path::new("/"))
            .chain(group_path.visited.iter().map(PathBuf::as_path))
            .find(|v| writable_by(rootfs, v, user.uid, user.gid, gids))
    {
        bail!(
            "{} in the image is writable by the container's user ({}:{}): it could change \
             /etc/group, in which the runtime (runc before 1.3) looks the gids up by name, after \
             this check; use runc 1.3+ or crun on this node, or make it read-only in the image",
            step.display(),
            user.uid,
            user.gid
        );
    }
    let group = rootfs.read("/etc/group", IMAGE_FILE_CAP).map_err(|e| {
        anyhow::anyhow!(
            "reading the image's /etc/group, in which the runtime (runc before 1.3) looks the \
             gids up by name: {e}"
        )
    })?;
    if gids.is_empty() {
        // Nothing to look up (runc looks up nothing either): the file of a
        // hostile image is not parsed for nothing, before containerd's answer.
        return Ok(());
    }
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

/// runc's exec enters the namespaces that the container's init process is
/// in at that moment (`/proc/PID/ns/*`). An init that has made a user
/// namespace of its own (no capability needed) can mount its own
/// `/etc/group` in a mount namespace of its own, which runc before 1.3 then
/// reads the exec's group names from (measured on runc 1.1.5: group 0).
/// For a container to which runc gave no user namespace, the init's must be
/// the wrapper's own.
pub fn check_init_user_namespace(init_pid: u32) -> Result<()> {
    // The link's text names the namespace (`user:[INODE]`, all of them on
    // one nsfs): half the cost of a `stat` through it.
    let ns =
        |path: &str| std::fs::read_link(path).map_err(|e| anyhow::anyhow!("reading {path}: {e}"));
    let init = ns(&format!("/proc/{init_pid}/ns/user"))?;
    if init != ns("/proc/self/ns/user")? {
        bail!(
            "the container's init process (pid {init_pid}) has entered a user namespace of its \
             own, in which it can mount its own /etc/group; the runtime (runc before 1.3) would \
             look the exec's gids up by name there: use runc 1.3+ or crun on this node"
        );
    }
    Ok(())
}

/// May a process of `uid`, `gid` and supplementary `gids` write the in-root
/// path `path` (or, for a directory, replace what is in it)? Its owner can,
/// as can those its mode bits let; a symlink is not written through (its
/// target is a step of its own).
fn writable_by(rootfs: &Rootfs, path: &Path, uid: u32, gid: u32, gids: &[u32]) -> bool {
    let Some(st) = rootfs.lstat(path) else {
        return false;
    };
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        return false;
    }
    // The owner may chmod it, whatever its mode bits say now.
    let mode = st.st_mode;
    let by_mode = st.st_uid == uid
        || ((st.st_gid == gid || gids.contains(&st.st_gid)) && mode & 0o020 != 0)
        || mode & 0o002 != 0;
    // With a POSIX ACL (an image layer can carry one), the kernel decides by
    // it whenever the mode has a group bit: named users and groups, the
    // owning group and others as its entries say, as far as its mask lets
    // them. A file system image may hold one that disagrees with the mode,
    // so it is read whenever the kernel would read it; one that cannot be
    // read counts as letting the user write.
    by_mode
        || (mode & 0o070 != 0
            && rootfs.acl(path).map_or(true, |acl| {
                acl.is_some_and(|acl| acl_lets_write(&acl, st.st_gid, uid, gid, gids))
            }))
}

/// The tags of a POSIX ACL's entries and its write bit, as the kernel's
/// `system.posix_acl_access` holds them.
mod acl_entry {
    pub const USER_OBJ: u16 = 0x01;
    pub const USER: u16 = 0x02;
    pub const GROUP_OBJ: u16 = 0x04;
    pub const GROUP: u16 = 0x08;
    pub const MASK: u16 = 0x10;
    pub const OTHER: u16 = 0x20;
    pub const WRITE: u16 = 0x02;
}

/// Does the POSIX ACL `acl`, in the kernel's `system.posix_acl_access`
/// format (a 4-byte version 2, then 8-byte entries: tag, permissions, id,
/// little-endian), let a process of `uid`, `gid` and `gids` that does not
/// own the file write it? Decided as the kernel's `posix_acl_permission`
/// walks the entries: a named user, else the first of its groups (the
/// owning group `owning_gid` among them) that has the write bit, each as
/// far as the first mask after it lets it, else others. One it cannot read
/// does.
fn acl_lets_write(acl: &[u8], owning_gid: u32, uid: u32, gid: u32, gids: &[u32]) -> bool {
    use acl_entry::*;
    let Some(entries) = acl
        .strip_prefix(&2u32.to_le_bytes())
        .filter(|e| e.len() % 8 == 0)
    else {
        return true;
    };
    let entries: Vec<(u16, u16, u32)> = entries
        .chunks_exact(8)
        .map(|e| {
            (
                u16::from_le_bytes([e[0], e[1]]),
                u16::from_le_bytes([e[2], e[3]]),
                u32::from_le_bytes([e[4], e[5], e[6], e[7]]),
            )
        })
        .collect();
    let in_groups = |g: u32| g == gid || gids.contains(&g);
    let masked = |i: usize, perm: u16| {
        let mask = entries[i + 1..]
            .iter()
            .find(|(tag, _, _)| *tag == MASK)
            .map_or(0o7, |&(_, mask, _)| mask);
        perm & mask & WRITE != 0
    };
    let mut in_a_group = false;
    for (i, &(tag, perm, id)) in entries.iter().enumerate() {
        match tag {
            USER if id == uid => return masked(i, perm),
            GROUP_OBJ | GROUP if in_groups(if tag == GROUP { id } else { owning_gid }) => {
                in_a_group = true;
                if perm & WRITE != 0 {
                    return masked(i, perm);
                }
            }
            USER_OBJ | USER | GROUP_OBJ | GROUP | MASK => {}
            OTHER => return !in_a_group && perm & WRITE != 0,
            // The kernel refuses access on an entry it does not know.
            _ => return true,
        }
    }
    // No entry for others: the kernel refuses access; nothing to trust.
    true
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

    /// A scratch image root with an `/etc`.
    fn image_root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        dir
    }

    /// A scratch image whose `/etc/group` is `group`, and a spec that runs
    /// its process as 1000:1000.
    fn image_for_user_1000(group: &str) -> (tempfile::TempDir, Config) {
        let dir = image_root();
        std::fs::write(dir.path().join("etc/group"), group).unwrap();
        let config = crate::spec::parse_config(
            serde_json::json!({"process": {"user": {"uid": 1000, "gid": 1000}}})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        (dir, config)
    }

    #[test]
    fn mounts_over_a_step_of_etc_group() {
        let dir = image_root();
        let root = dir.path();
        std::fs::create_dir_all(root.join("data")).unwrap();
        let config = |dests: &[&str]| {
            let mounts: Vec<serde_json::Value> = dests
                .iter()
                .map(|d| serde_json::json!({"destination": d}))
                .collect();
            crate::spec::parse_config(serde_json::json!({"mounts": mounts}).to_string().as_bytes())
                .unwrap()
        };
        // Also after a prefetch (as while containerd answers): the same verdict.
        let refused = |dests: &[&str]| {
            let config = config(dests);
            let verdict = |prefetched: bool| {
                let rootfs = Rootfs::new(Some(root.to_path_buf()));
                if prefetched {
                    prefetch(&rootfs, &config);
                }
                check(&rootfs, &config, &[1000]).map_err(|e| format!("{e:#}"))
            };
            let fresh = verdict(false);
            assert_eq!(fresh, verdict(true), "{dests:?}");
            fresh.is_err()
        };
        for d in [
            "/",
            "/etc",
            "/etc/",
            "/etc/group",
            "//etc/./group",
            "/x/../etc/group",
            "/..",
        ] {
            assert!(refused(&[d]), "{d}");
        }
        for d in ["/etc/hosts", "/etcx", "/data", "/etc/group.d", "/proc"] {
            assert!(!refused(&[d]), "{d}");
        }
        // The image makes /etc/group a symlink into a directory a pod mounts.
        std::os::unix::fs::symlink("/config/group", root.join("etc/group")).unwrap();
        assert!(refused(&["/config"]));
        // The image makes a mount point a symlink to /etc.
        std::os::unix::fs::symlink("/etc", root.join("data/link")).unwrap();
        assert!(refused(&["/data/link"]));
        assert!(!refused(&["/data"]));
    }

    #[test]
    fn a_group_file_the_user_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = image_root();
        let root = dir.path();
        std::fs::write(root.join("etc/group"), "alice:x:1000:\n").unwrap();
        let user = |uid: u32, gid: u32| {
            crate::spec::parse_config(
                serde_json::json!({"process": {"user": {"uid": uid, "gid": gid}}})
                    .to_string()
                    .as_bytes(),
            )
            .unwrap()
        };
        let mode = |p: &str, m: u32| {
            std::fs::set_permissions(root.join(p), std::fs::Permissions::from_mode(m)).unwrap()
        };
        let refused = |user: &Config, gids: &[u32]| {
            check(&Rootfs::new(Some(root.to_path_buf())), user, gids).is_err()
        };
        let chown = |p: &str, u: u32, g: u32| {
            std::os::unix::fs::chown(root.join(p), Some(u), Some(g)).unwrap()
        };
        chown("etc", 0, 0);
        chown("etc/group", 0, 0);
        mode("etc", 0o755);
        mode("etc/group", 0o644);
        assert!(!refused(&user(1000, 1000), &[1000]));
        // Group-writable by gid 0, the process's group (an OpenShift-style image).
        mode("etc/group", 0o664);
        assert!(!refused(&user(1000, 1000), &[1000]));
        assert!(refused(&user(1000, 0), &[0]));
        assert!(refused(&user(1000, 1000), &[1000, 0]));
        mode("etc/group", 0o644);
        // Owned by the user, whatever its mode: an owner may chmod it.
        chown("etc/group", 1000, 1000);
        mode("etc/group", 0o444);
        assert!(refused(&user(1000, 1000), &[1000]));
        chown("etc", 1000, 1000);
        chown("etc/group", 0, 0);
        mode("etc", 0o555);
        assert!(refused(&user(1000, 1000), &[1000]));
        chown("etc", 0, 0);
        mode("etc", 0o755);
        mode("etc/group", 0o644);
        // Or its directory writable by all.
        chown("etc/group", 1000, 1000);
        assert!(refused(&user(1000, 1000), &[1000]));
        chown("etc/group", 0, 0);
        mode("etc", 0o777);
        assert!(refused(&user(1000, 1000), &[1000]));
        mode("etc", 0o755);
        // The image's root directory: /etc could be renamed away.
        mode(".", 0o777);
        assert!(refused(&user(1000, 1000), &[1000]));
        mode(".", 0o755);
        // uid 0 is not checked.
        assert!(!refused(&user(0, 0), &[0]));
        // /etc/group a symlink whose target is not UTF-8, to a file the user
        // owns: the file its bytes name is the one checked.
        use std::os::unix::ffi::OsStringExt;
        let not_utf8 = std::ffi::OsString::from_vec(b"\xffgroup".to_vec());
        std::fs::rename(root.join("etc/group"), root.join("etc").join(&not_utf8)).unwrap();
        std::os::unix::fs::symlink(&not_utf8, root.join("etc/group")).unwrap();
        assert!(!refused(&user(1000, 1000), &[1000]));
        std::os::unix::fs::chown(root.join("etc").join(&not_utf8), Some(1000), Some(1000)).unwrap();
        assert!(refused(&user(1000, 1000), &[1000]));
    }

    /// An image layer can carry a POSIX ACL: one that lets the user, or one
    /// of its groups, write `/etc/group` or `/etc` is refused as a mode would
    /// be; one whose mask takes the write away, or that names others, is not.
    #[test]
    fn an_acl_that_lets_the_user_write_is_refused() {
        use std::os::unix::ffi::OsStrExt;
        let (dir, config) = image_for_user_1000("users:x:1000:\n");
        let root = dir.path();
        use acl_entry::*;
        const UNDEFINED: u32 = u32::MAX;
        // The entries (tag, permissions, id) as the kernel's xattr holds them.
        let xattr_of = |entries: &[(u16, u16, u32)]| {
            let mut xattr = 2u32.to_le_bytes().to_vec();
            for (tag, perm, id) in entries {
                xattr.extend(tag.to_le_bytes());
                xattr.extend(perm.to_le_bytes());
                xattr.extend(id.to_le_bytes());
            }
            xattr
        };
        // Sets the ACL (the kernel then sets the mode's group bits to the mask).
        let set_acl = |path: &str, named: (u16, u32), mask: u16| {
            let mut entries = vec![(USER_OBJ, 7, UNDEFINED), (GROUP_OBJ, 5, UNDEFINED)];
            entries.push((named.0, 7, named.1));
            entries.extend([(MASK, mask, UNDEFINED), (OTHER, 5, UNDEFINED)]);
            entries.sort_by_key(|&(tag, _, id)| (tag, id));
            let xattr = xattr_of(&entries);
            let p = std::ffi::CString::new(root.join(path).as_os_str().as_bytes()).unwrap();
            // SAFETY: NUL-terminated names, a buffer of the given length.
            let rc = unsafe {
                libc::setxattr(
                    p.as_ptr(),
                    c"system.posix_acl_access".as_ptr(),
                    xattr.as_ptr().cast(),
                    xattr.len(),
                    0,
                )
            };
            assert_eq!(rc, 0, "{path}: {}", std::io::Error::last_os_error());
        };
        let clear = || {
            for p in [".", "etc", "etc/group"] {
                let p = std::ffi::CString::new(root.join(p).as_os_str().as_bytes()).unwrap();
                // SAFETY: NUL-terminated names.
                unsafe { libc::removexattr(p.as_ptr(), c"system.posix_acl_access".as_ptr()) };
            }
        };
        let refused =
            |gids: &[u32]| check(&Rootfs::new(Some(root.to_path_buf())), &config, gids).is_err();
        for (path, named, mask, gids, expected) in [
            ("etc/group", (USER, 1000), 7, &[1000][..], true),
            ("etc/group", (USER, 1001), 7, &[1000][..], false),
            ("etc/group", (USER, 1000), 5, &[1000][..], false),
            ("etc/group", (GROUP, 60000), 7, &[1000, 60000][..], true),
            ("etc/group", (GROUP, 60000), 7, &[1000][..], false),
            ("etc/group", (GROUP, 1000), 7, &[][..], true),
            ("etc", (USER, 1000), 7, &[1000][..], true),
            (".", (USER, 1000), 7, &[1000][..], true),
            ("etc", (USER, 1000), 5, &[1000][..], false),
        ] {
            clear();
            assert!(!refused(gids), "without an ACL");
            set_acl(path, named, mask);
            assert_eq!(
                refused(gids),
                expected,
                "{path} {named:?} mask {mask:o} {gids:?}"
            );
        }
        clear();
        // As the kernel walks the entries (an image's file system may hold
        // an ACL that disagrees with the mode, or is out of order).
        let lets = |entries: &[(u16, u16, u32)], gids: &[u32]| {
            acl_lets_write(&xattr_of(entries), 0, 1000, 1000, gids)
        };
        let (r, rw, u) = (4, 6, UNDEFINED);
        let base = |named: &[(u16, u16, u32)], mask: Option<u16>, other: u16| {
            let mut e = vec![(USER_OBJ, rw, u)];
            e.extend(named.iter().filter(|n| n.0 == USER));
            e.push((GROUP_OBJ, r, u));
            e.extend(named.iter().filter(|n| n.0 == GROUP));
            e.extend(mask.map(|m| (MASK, m, u)));
            e.push((OTHER, other, u));
            e
        };
        assert!(lets(&base(&[(USER, rw, 1000)], Some(rw), r), &[]));
        assert!(!lets(&base(&[(USER, rw, 1000)], Some(r), r), &[]));
        assert!(lets(&base(&[(USER, rw, 1000)], None, r), &[]), "no mask");
        assert!(!lets(&base(&[(USER, rw, 1001)], Some(rw), r), &[]));
        assert!(lets(&base(&[], None, rw), &[]), "others may write");
        // In a group that may not write: others' write bit does not count.
        assert!(!lets(&base(&[(GROUP, r, 60000)], Some(rw), rw), &[60000]));
        assert!(lets(&base(&[(GROUP, rw, 60000)], Some(rw), r), &[60000]));
        assert!(!lets(&base(&[(GROUP, rw, 60000)], Some(r), r), &[60000]));
        // The owning group (gid 0 here) through its entry.
        let owning = vec![
            (USER_OBJ, rw, u),
            (GROUP_OBJ, rw, u),
            (MASK, rw, u),
            (OTHER, r, u),
        ];
        assert!(lets(&owning, &[0]));
        assert!(!lets(&owning, &[]));
        // A mask before the entry is not its mask (as the kernel reads it).
        let early_mask = vec![
            (USER_OBJ, rw, u),
            (MASK, r, u),
            (USER, rw, 1000),
            (OTHER, r, u),
        ];
        assert!(lets(&early_mask, &[]));
        // An ACL it cannot read lets the user write.
        assert!(acl_lets_write(&[2, 0, 0, 0, 1], 0, 1000, 1000, &[]));
        assert!(acl_lets_write(&[1, 0, 0, 0], 0, 1000, 1000, &[]));
        assert!(
            acl_lets_write(&2u32.to_le_bytes(), 0, 1000, 1000, &[]),
            "no entry for others"
        );
        assert!(lets(&[(0x40, rw, u), (OTHER, r, u)], &[]), "an unknown tag");
    }

    /// The writability test after a prefetch decides on the modes the
    /// prefetch found, as the look-up on its bytes: one state of the image.
    #[test]
    fn the_check_decides_on_the_modes_the_prefetch_found() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, config) = image_for_user_1000("users:x:1000:\n");
        let root = dir.path();
        let fresh = || Rootfs::new(Some(root.to_path_buf()));
        let mode = |m: u32| {
            std::fs::set_permissions(root.join("etc/group"), std::fs::Permissions::from_mode(m))
                .unwrap()
        };
        for (before, after) in [(0o644, 0o666), (0o666, 0o644)] {
            mode(before);
            let rootfs = fresh();
            prefetch(&rootfs, &config);
            mode(after);
            let writable_before = before & 0o002 != 0;
            assert_eq!(
                check(&rootfs, &config, &[1000]).is_err(),
                writable_before,
                "{before:o} then {after:o}"
            );
            assert_eq!(
                check(&fresh(), &config, &[1000]).is_err(),
                !writable_before,
                "{after:o} alone"
            );
        }
    }

    /// What a prefetch read is what the check then decides on: the check
    /// after it sees the bytes read before, also once the file is gone, and
    /// decides as a check alone on those bytes.
    #[test]
    fn the_check_decides_on_the_bytes_the_prefetch_read() {
        let dir = image_root();
        let root = dir.path();
        let config = crate::spec::parse_config(
            serde_json::json!({
                "process": {"user": {"uid": 1000, "gid": 1000}},
                "mounts": [{"destination": "/proc"}, {"destination": "/etc/hosts"}],
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        let fresh = || Rootfs::new(Some(root.to_path_buf()));
        // A group named "1000" whose gid is 0: runc would give group 0.
        for (group, refused) in [
            ("users:x:1000:\n", false),
            ("1000:x:0:\nusers:x:1000:\n", true),
        ] {
            std::fs::write(root.join("etc/group"), group).unwrap();
            assert_eq!(
                check(&fresh(), &config, &[1000]).is_err(),
                refused,
                "{group}"
            );
            let rootfs = fresh();
            prefetch(&rootfs, &config);
            std::fs::remove_file(root.join("etc/group")).unwrap();
            let after = check(&rootfs, &config, &[1000]);
            assert_eq!(after.is_err(), refused, "{group}: {after:?}");
        }
    }
}
