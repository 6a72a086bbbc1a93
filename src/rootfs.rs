//! Reading a file inside a container's rootfs, which belongs to whoever built
//! the image.
//!
//! Every path component is resolved inside the rootfs by the kernel
//! (`openat2` with `RESOLVE_IN_ROOT`), so no symlink, `..` or absolute link
//! leaves it. The file is first opened with `O_PATH`, which neither blocks on a
//! FIFO nor runs a device driver's open; only a regular file is then reopened
//! for reading, and at most `cap` bytes are read.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{Mode, SFlag, fstat};

/// Why a file of the rootfs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("opening rootfs {0}: {1}")]
    Root(String, io::Error),
    #[error("{0} in the image is not a regular file ({1})")]
    NotRegular(String, &'static str),
    #[error("{0} in the image is larger than {1} bytes")]
    TooLarge(String, u64),
    #[error("reading {0} in the image: {1}")]
    Io(String, io::Error),
    #[error("this kernel has no openat2 (Linux 5.6 or newer is needed to read image files safely)")]
    NoOpenat2,
}

/// Does this kernel have `openat2` (Linux 5.6+), which safe image reads need?
pub fn openat2_supported() -> bool {
    let Ok(root) = File::open("/") else {
        return false;
    };
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT);
    match openat2(root.as_raw_fd(), ".", how) {
        Ok(fd) => {
            // SAFETY: openat2 returned a new descriptor that nothing else owns.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
            true
        }
        Err(e) => e != nix::errno::Errno::ENOSYS,
    }
}

/// Reads `path` (absolute inside the image, e.g. `/etc/group`) from the
/// rootfs at `root`. `Ok(None)` when the file (or a directory on its way)
/// does not exist.
pub fn read_in_root(root: &Path, path: &str, cap: u64) -> Result<Option<Vec<u8>>, RootfsError> {
    let root_fd = File::open(root).map_err(|e| Root(root.display().to_string(), e))?;
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = match openat2(root_fd.as_raw_fd(), path, how) {
        Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd) },
        Err(nix::errno::Errno::ENOENT) | Err(nix::errno::Errno::ENOTDIR) => return Ok(None),
        Err(nix::errno::Errno::ENOSYS) => return Err(RootfsError::NoOpenat2),
        Err(e) => return Err(Io(path.to_string(), e.into())),
    };
    let stat = fstat(fd.as_raw_fd()).map_err(|e| Io(path.to_string(), e.into()))?;
    let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
    if kind != SFlag::S_IFREG {
        return Err(RootfsError::NotRegular(path.to_string(), kind_name(kind)));
    }
    if stat.st_size as u64 > cap {
        return Err(RootfsError::TooLarge(path.to_string(), cap));
    }
    // Reopen the very inode the O_PATH descriptor holds, for reading.
    let reopened = nix::fcntl::open(
        format!("/proc/self/fd/{}", fd.as_raw_fd()).as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| Io(path.to_string(), e.into()))?;
    let file = unsafe { File::from_raw_fd(reopened) };
    let mut data = Vec::with_capacity(stat.st_size.max(0) as usize);
    // The size may change under us: never read past the cap.
    file.take(cap + 1)
        .read_to_end(&mut data)
        .map_err(|e| Io(path.to_string(), e))?;
    if data.len() as u64 > cap {
        return Err(RootfsError::TooLarge(path.to_string(), cap));
    }
    Ok(Some(data))
}

use RootfsError::{Io, Root};

fn kind_name(kind: SFlag) -> &'static str {
    match kind {
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFLNK => "a symbolic link",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFSOCK => "a socket",
        _ => "of unknown type",
    }
}

/// A path resolved inside a rootfs: where it leads, and every in-root path
/// the resolution went through (each directory and each symlink), so that a
/// caller can tell whether a mount over any of them would change the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub path: String,
    pub visited: Vec<String>,
}

/// Resolves `path` inside the rootfs at `root` as the kernel would with the
/// rootfs as `/`: symlinks followed (absolute ones from the rootfs), `..`
/// stopping at it. Nothing is opened, only `lstat` and `readlink` of paths
/// whose every directory was found not to be a symlink. A missing component
/// ends the walk; the rest is joined as it is (as a runtime creating a mount
/// point would).
pub fn resolve_in_root(root: &Path, path: &str) -> io::Result<Resolved> {
    let mut todo: std::collections::VecDeque<String> =
        path.split('/').map(str::to_string).collect();
    let mut current: Vec<String> = Vec::new();
    let mut visited = Vec::new();
    let mut links = 0;
    let mut missing = false;
    while let Some(part) = todo.pop_front() {
        match part.as_str() {
            "" | "." => continue,
            ".." => {
                current.pop();
                continue;
            }
            _ => current.push(part),
        }
        let in_root = format!("/{}", current.join("/"));
        visited.push(in_root.clone());
        if missing {
            continue;
        }
        let host = root.join(&in_root[1..]);
        match std::fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = std::fs::read_link(&host)?;
                let target = target.to_string_lossy();
                current.pop();
                if target.starts_with('/') {
                    current.clear();
                }
                for (i, p) in target.split('/').enumerate() {
                    todo.insert(i, p.to_string());
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing = true,
            Err(e) => return Err(e),
        }
    }
    Ok(Resolved {
        path: format!("/{}", current.join("/")),
        visited,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn resolution_stays_in_the_root_and_names_every_step() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("real/etc")).unwrap();
        std::fs::write(r.join("real/etc/group"), "").unwrap();
        symlink("/real/etc", r.join("etc")).unwrap();
        symlink("../../../../config", r.join("real/link")).unwrap();
        let got = resolve_in_root(r, "/etc/group").unwrap();
        assert_eq!(got.path, "/real/etc/group");
        assert_eq!(
            got.visited,
            ["/etc", "/real", "/real/etc", "/real/etc/group"]
        );
        // `..` stops at the root; a missing part ends the walk.
        let got = resolve_in_root(r, "/real/link/group").unwrap();
        assert_eq!(got.path, "/config/group");
        assert_eq!(resolve_in_root(r, "/x/../../y").unwrap().path, "/y");
        symlink("loop", r.join("loop")).unwrap();
        assert!(resolve_in_root(r, "/loop").is_err());
    }
}
