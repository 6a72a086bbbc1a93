//! Reading a file inside a container's rootfs, which belongs to whoever built
//! the image.
//!
//! Every path component is resolved inside the rootfs by the kernel
//! (`openat2` with `RESOLVE_IN_ROOT`), so no symlink, `..` or absolute link
//! leaves it. Where the kernel has no `openat2` (before Linux 5.6: RHEL 8's
//! 4.18, say; and qemu-user), or where it keeps failing a `..` because
//! renames and mounts race it, the same resolution is done one component at a
//! time from descriptors: each step `openat(O_PATH | O_NOFOLLOW)` from the
//! directory already held, symlinks read and expanded by us, `..` taken from
//! the stack of held directories (never opened, so it cannot climb out of a
//! directory moved away meanwhile). The file is first opened with `O_PATH`,
//! which neither blocks on a FIFO nor runs a device driver's open; only a
//! regular file is then reopened for reading, and at most `cap` bytes are read.
//! [`Rootfs::read_as`] reads where containerd's or CRI-O's own walk of the
//! path leads instead (see [`crate::lexical`]): the files those runtimes
//! took the image's groups from.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;

use crate::lexical::{self, Runtime};
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat};

/// Why a file of the rootfs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("config.json has no root.path, so the image's files cannot be read")]
    NoRoot,
    #[error("opening rootfs {0}: {1}")]
    Root(String, io::Error),
    #[error("{0} in the image is not a regular file ({1})")]
    NotRegular(String, &'static str),
    #[error("{0} in the image is larger than {1} bytes")]
    TooLarge(String, u64),
    #[error("resolving {0} in the image: {1}")]
    Resolve(String, io::Error),
    #[error("resolving {0} in the image as {1} does: {2}")]
    AsRuntime(String, Runtime, io::Error),
    #[error("reading {0} in the image: {1}")]
    Io(String, io::Error),
}

/// Does this kernel have `openat2` (Linux 5.6+)? Without it image files are
/// resolved component by component (see the module's comment).
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
        Err(e) => e != Errno::ENOSYS,
    }
}

/// An image file's bytes, shared by every reader; None: no such file.
pub type FileBytes = Option<Rc<[u8]>>;

/// A container's rootfs, as the wrapper reads it: the directory opened once,
/// each image file read at most once (the group-name look-up check then
/// sees the very bytes D was computed from), and each path step examined
/// once however many mount destinations go through it.
pub struct Rootfs {
    path: Option<PathBuf>,
    dir: OnceCell<File>,
    /// Files read, by in-root path and how its symlinks were taken.
    files: RefCell<HashMap<(Vec<u8>, Links), FileBytes>>,
    /// A runtime walk's `lstat`s: a symlink's target, or None for anything else.
    walked: RefCell<HashMap<Vec<u8>, lexical::Found>>,
    steps: RefCell<HashMap<PathBuf, Step>>,
    acls: RefCell<HashMap<PathBuf, Option<Vec<u8>>>>,
}

impl Rootfs {
    /// The rootfs at `path` (None: the spec names none). Nothing is opened yet.
    pub fn new(path: Option<PathBuf>) -> Rootfs {
        Rootfs {
            path,
            dir: OnceCell::new(),
            files: RefCell::default(),
            walked: RefCell::default(),
            steps: RefCell::default(),
            acls: RefCell::default(),
        }
    }

    pub fn path(&self) -> Result<&Path, RootfsError> {
        self.path.as_deref().ok_or(RootfsError::NoRoot)
    }

    fn dir(&self) -> Result<&File, RootfsError> {
        if let Some(dir) = self.dir.get() {
            return Ok(dir);
        }
        let path = self.path()?;
        let dir = File::open(path).map_err(|e| Root(path.display().to_string(), e))?;
        Ok(self.dir.get_or_init(|| dir))
    }

    /// Reads `file` (absolute inside the image, e.g. `/etc/group`), at most
    /// `cap` bytes; `Ok(None)` when it (or a directory on its way) does not
    /// exist. A second read of the same file returns the first one's bytes.
    pub fn read(&self, file: &str, cap: u64) -> Result<FileBytes, RootfsError> {
        self.read_once(file.as_bytes(), Links::Follow, cap)
    }

    /// [`read_at`] of this rootfs, each path (taken one way) read once.
    fn read_once(&self, path: &[u8], links: Links, cap: u64) -> Result<FileBytes, RootfsError> {
        let key = (path.to_vec(), links);
        if let Some(data) = self.files.borrow().get(&key) {
            return Ok(data.clone());
        }
        let data: FileBytes = read_at(self.dir()?, path, links, cap)?.map(Rc::from);
        self.files.borrow_mut().insert(key, data.clone());
        Ok(data)
    }

    /// Reads `file` where `runtime`'s own resolution of it leads (see
    /// [`crate::lexical`]), at most `cap` bytes, that path's symlinks
    /// refused (the walk found none; one there now is a race, and an error).
    /// `Ok(None)` when that is `file` itself, reached without a symlink: the
    /// kernel's [`Rootfs::read`] of `file` reads the same file.
    /// `Ok(Some(None))` when the file is not there (ENOENT, ENOTDIR).
    pub fn read_as(
        &self,
        runtime: Runtime,
        file: &str,
        cap: u64,
    ) -> Result<Option<FileBytes>, RootfsError> {
        let root = self.dir()?;
        let root_len = self.path()?.as_os_str().len();
        let mut lstat = |path: &[u8]| self.walk_lstat(root, root_len, path);
        let resolved = match runtime {
            Runtime::Containerd => lexical::containerd_root_path(file.as_bytes(), &mut lstat),
            Runtime::Crio => lexical::crio_secure_join(file.as_bytes(), &mut lstat),
        }
        .map_err(|e| RootfsError::AsRuntime(file.to_string(), runtime, e.into()))?;
        if !resolved.followed_links && resolved.path == file.as_bytes() {
            return Ok(None);
        }
        self.read_once(&resolved.path, Links::Refuse, cap).map(Some)
    }

    /// `lstat` of the clean in-root path `path` as a runtime's walk does it
    /// on the host, `root + path` (see [`walk_lstat_at`]): a symlink's
    /// target, or None for anything else; remembered (the first
    /// [`WALK_MEMO`] paths: a crafted image can make a walk `lstat` many
    /// thousands). Where that host path would be too long for the kernel
    /// (from this rootfs path, `root_len` bytes), ENAMETOOLONG, as the
    /// runtime's `lstat` fails (its own mount of the image may have a
    /// shorter path: then this refuses a little sooner).
    fn walk_lstat(&self, root: &File, root_len: usize, path: &[u8]) -> lexical::Found {
        if root_len + path.len() >= libc::PATH_MAX as usize {
            return Err(Errno::ENAMETOOLONG);
        }
        if let Some(known) = self.walked.borrow().get(path) {
            return known.clone();
        }
        let found = walk_lstat_at(root, path);
        let mut walked = self.walked.borrow_mut();
        if walked.len() < WALK_MEMO {
            walked.insert(path.to_vec(), found.clone());
        }
        found
    }

    /// `lstat` of the in-root path `path`, whose every directory was found
    /// not to be a symlink ([`Rootfs::resolve`]'s visited steps): None when
    /// it cannot be read. A step a resolution examined answers as it was
    /// found then, so that a check on the resolution sees one state of it.
    pub fn lstat(&self, path: &Path) -> Option<FileStat> {
        if let Some(step) = self.steps.borrow().get(path) {
            return step.stat();
        }
        let relative = match path.strip_prefix("/").unwrap_or(path) {
            r if r.as_os_str().is_empty() => Path::new("."),
            relative => relative,
        };
        let dir = self.dir().ok()?;
        nix::sys::stat::fstatat(
            Some(dir.as_raw_fd()),
            relative,
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .ok()
    }

    /// The POSIX ACL (`system.posix_acl_access`, as the kernel stores it) of
    /// the in-root path `path`, examined as [`Rootfs::lstat`] does (the last
    /// component not followed); None when
    /// it has none or its file system keeps none. A second read of the same
    /// path returns the first one's.
    pub fn acl(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        if let Some(acl) = self.acls.borrow().get(path) {
            return Ok(acl.clone());
        }
        let acl = self.read_acl(path)?;
        self.acls
            .borrow_mut()
            .insert(path.to_path_buf(), acl.clone());
        Ok(acl)
    }

    fn read_acl(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        let dir = self.dir().map_err(io::Error::other)?;
        // The root through its descriptor; any other step by its path, the
        // last component not followed: a path walk is a third of the cost of
        // one through /proc/self/fd (every directory on the way was found
        // not to be a symlink, as for `lstat`).
        let at = match path.strip_prefix("/").unwrap_or(path) {
            r if r.as_os_str().is_empty() => None,
            relative => {
                let full = self.path().map_err(io::Error::other)?.join(relative);
                Some(std::ffi::CString::new(full.into_os_string().into_vec())?)
            }
        };
        let name = c"system.posix_acl_access";
        let get = |buf: &mut [u8]| {
            let (ptr, len) = (buf.as_mut_ptr().cast(), buf.len());
            // SAFETY: NUL-terminated names; buf is writable for its length.
            let n = unsafe {
                match &at {
                    None => libc::fgetxattr(dir.as_raw_fd(), name.as_ptr(), ptr, len),
                    Some(at) => libc::lgetxattr(at.as_ptr(), name.as_ptr(), ptr, len),
                }
            };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        };
        let none = |e: &io::Error| {
            matches!(
                e.raw_os_error(),
                Some(libc::ENODATA) | Some(libc::EOPNOTSUPP)
            )
        };
        // The size first: an ACL has at most a few dozen entries.
        let size = match get(&mut []) {
            Ok(size) => size,
            Err(e) if none(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut buf = vec![0u8; size.min(64 << 10)];
        match get(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                Ok(Some(buf))
            }
            Err(e) if none(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// [`resolve_in_root`] in this rootfs.
    pub fn resolve(&self, path: &str) -> Result<Resolved, RootfsError> {
        let dir = self.dir()?;
        resolve_at(dir, path, &mut self.steps.borrow_mut())
            .map_err(|e| RootfsError::Resolve(path.to_string(), e))
    }
}

/// Reads `path` (absolute inside the image, e.g. `/etc/group`) from the
/// rootfs directory `root_fd`. `Ok(None)` when the file (or a directory on
/// its way) does not exist.
fn read_at(
    root_fd: &File,
    path: &[u8],
    links: Links,
    cap: u64,
) -> Result<Option<Vec<u8>>, RootfsError> {
    let shown = || String::from_utf8_lossy(path).into_owned();
    let fd = match open_in_root(root_fd, path, links) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => return Ok(None),
        Err(e) => return Err(Io(shown(), e.into())),
    };
    let stat = fstat(fd.as_raw_fd()).map_err(|e| Io(shown(), e.into()))?;
    let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
    if kind != SFlag::S_IFREG {
        return Err(RootfsError::NotRegular(shown(), kind_name(kind)));
    }
    if stat.st_size as u64 > cap {
        return Err(RootfsError::TooLarge(shown(), cap));
    }
    // Reopen the very inode the O_PATH descriptor holds, for reading.
    let reopened = nix::fcntl::open(
        format!("/proc/self/fd/{}", fd.as_raw_fd()).as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| Io(shown(), e.into()))?;
    let file = unsafe { File::from_raw_fd(reopened) };
    let mut data = Vec::with_capacity(stat.st_size.max(0) as usize);
    // The size may change under us: never read past the cap.
    file.take(cap + 1)
        .read_to_end(&mut data)
        .map_err(|e| Io(shown(), e))?;
    if data.len() as u64 > cap {
        return Err(RootfsError::TooLarge(shown(), cap));
    }
    Ok(Some(data))
}

use RootfsError::{Io, Root};

/// [`Rootfs::walk_lstat`] from the rootfs directory `root`: the parent is
/// resolved as the host resolves it from the rootfs (a runtime's walk can
/// `lstat` through a directory that is a link, containerd's after a link to
/// a link), a path the host would follow out of the rootfs refused (EXDEV).
fn walk_lstat_at(root: &File, path: &[u8]) -> lexical::Found {
    let cut = path.iter().rposition(|&b| b == b'/').ok_or(Errno::EINVAL)?;
    let (parent, name) = (&path[..cut], &path[cut + 1..]);
    let parent_fd;
    let dir = if parent.is_empty() {
        root.as_raw_fd()
    } else {
        parent_fd = open_in_root(root, parent, Links::Beneath)?;
        parent_fd.as_raw_fd()
    };
    let st = nix::sys::stat::fstatat(Some(dir), name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFLNK {
        return Ok(None);
    }
    Ok(Some(nix::fcntl::readlinkat(Some(dir), name)?.into_vec()))
}

/// How many `lstat`s of the runtimes' walks a rootfs remembers: an ordinary
/// image needs a handful; at most 4 KiB each.
const WALK_MEMO: usize = 1024;

/// How many times an `openat2` that met a rename or mount is tried again.
const OPENAT2_TRIES: usize = 32;

/// How a resolution in the root takes symlinks.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Links {
    /// As the kernel in a container takes them: absolute targets from the
    /// root, `..` stopping at it.
    Follow,
    /// Refused with ELOOP: for a path a runtime's own walk found free of
    /// them (see [`crate::lexical`]).
    Refuse,
    /// As the host takes them from the rootfs directory: relative targets
    /// followed, an absolute one or a `..` above the rootfs refused with
    /// EXDEV (the host would leave the rootfs there).
    Beneath,
}

/// `path` opened `O_PATH` inside the root `root_fd` by the kernel
/// ([`openat2_in_root`]), or by [`open_in_root_by_steps`] where the kernel
/// has no `openat2` or keeps meeting renames and mounts: the step-by-step
/// resolution holds each directory it walks through and meets no such race.
fn open_in_root(root_fd: &File, path: &[u8], links: Links) -> Result<OwnedFd, Errno> {
    match openat2_in_root(root_fd, path, links) {
        Err(Errno::ENOSYS) | Err(Errno::EAGAIN) => open_in_root_by_steps(root_fd, path, links),
        opened => opened,
    }
}

/// `openat2(root, path, O_PATH)` with the resolution `links` asks for.
/// The kernel fails a lookup of `..` with EAGAIN when any rename or mount on
/// the system happened meanwhile (it then cannot be sure that `..` stayed
/// inside the root): on a node that starts containers mounts happen all the
/// time, so an image whose `/etc/group` resolves through `..` would fail
/// now and then. The call is tried again, [`OPENAT2_TRIES`] times in all.
fn openat2_in_root(root_fd: &File, path: &[u8], links: Links) -> Result<OwnedFd, Errno> {
    let scope = match links {
        Links::Follow => ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        Links::Refuse => ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_SYMLINKS,
        Links::Beneath => ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS,
    };
    // RESOLVE_BENEATH refuses an absolute path: the root is where it starts.
    let path = match links {
        Links::Beneath => match path.iter().position(|&b| b != b'/') {
            Some(start) => &path[start..],
            None => b".".as_slice(),
        },
        _ => path,
    };
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(scope);
    let mut tries = 1;
    loop {
        match openat2(root_fd.as_raw_fd(), path, how) {
            // SAFETY: openat2 returned a new descriptor that nothing else owns.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
            Err(Errno::EAGAIN) if tries < OPENAT2_TRIES => tries += 1,
            Err(e) => return Err(e),
        }
    }
}

/// The most symlinks one resolution follows, as the kernel's limit.
const MAX_LINKS: usize = 40;

/// `openat2(root, path, O_PATH, RESOLVE_IN_ROOT)` done in user space, one
/// component at a time: every step is opened `O_NOFOLLOW` relative to a
/// directory descriptor already held, a symlink's target is expanded here
/// (absolute targets from the root), and `..` pops the stack of held
/// directories, stopping at the root. Nothing is ever resolved by the kernel
/// across more than one component, so nothing leads out of the root.
fn open_in_root_by_steps(root: &File, path: &[u8], links: Links) -> Result<OwnedFd, Errno> {
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    let o_path = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let reopen = |dir: &OwnedFd| -> Result<OwnedFd, Errno> {
        let fd = nix::fcntl::openat(Some(dir.as_raw_fd()), ".", o_path, Mode::empty())?;
        // SAFETY: openat returned a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    };
    let root_dir = {
        let fd = nix::fcntl::openat(Some(root.as_raw_fd()), ".", o_path, Mode::empty())?;
        // SAFETY: as above.
        unsafe { OwnedFd::from_raw_fd(fd) }
    };
    // The directories walked through, the root first; the last is the
    // current directory.
    let mut dirs: Vec<OwnedFd> = vec![root_dir];
    let mut todo = lexical::components(path);
    let mut followed = 0;
    while let Some(part) = todo.pop_front() {
        match part.as_slice() {
            b"" | b"." => {
                if todo.is_empty() {
                    return reopen(dirs.last().expect("the root stays"));
                }
                continue;
            }
            b".." => {
                if dirs.len() > 1 {
                    dirs.pop();
                } else if links == Links::Beneath {
                    return Err(Errno::EXDEV);
                }
                if todo.is_empty() {
                    return reopen(dirs.last().expect("the root stays"));
                }
                continue;
            }
            _ => {}
        }
        let dir = dirs.last().expect("the root stays");
        let raw = nix::fcntl::openat(
            Some(dir.as_raw_fd()),
            part.as_slice(),
            o_path,
            Mode::empty(),
        )?;
        // SAFETY: openat returned a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let kind = SFlag::from_bits_truncate(fstat(fd.as_raw_fd())?.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFLNK {
            followed += 1;
            if links == Links::Refuse || followed > MAX_LINKS {
                return Err(Errno::ELOOP);
            }
            // An O_PATH descriptor of a symlink reads with an empty path.
            let target = nix::fcntl::readlinkat(Some(fd.as_raw_fd()), "")?.into_vec();
            if target.starts_with(b"/") {
                if links == Links::Beneath {
                    return Err(Errno::EXDEV);
                }
                dirs.truncate(1);
            }
            lexical::prepend(&mut todo, &target);
            continue;
        }
        if todo.is_empty() {
            return Ok(fd);
        }
        if kind != SFlag::S_IFDIR {
            return Err(Errno::ENOTDIR);
        }
        dirs.push(fd);
    }
    reopen(dirs.last().expect("the root stays"))
}

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
    pub path: PathBuf,
    pub visited: Vec<PathBuf>,
}

/// What one in-root path is, as [`resolve_in_root`] found it, with its
/// `lstat`.
#[derive(Clone)]
enum Step {
    /// A symlink, with its target's bytes.
    Link(Vec<u8>, FileStat),
    Missing,
    Other(FileStat),
}

impl Step {
    fn stat(&self) -> Option<FileStat> {
        match self {
            Step::Link(_, st) | Step::Other(st) => Some(*st),
            Step::Missing => None,
        }
    }
}

/// Resolves `path` inside the rootfs at `root` as the kernel would with the
/// rootfs as `/`: symlinks followed (absolute ones from the rootfs), `..`
/// stopping at it. Nothing is opened, only `lstat` and `readlink` of paths
/// whose every directory was found not to be a symlink. A missing component
/// ends the walk; the rest is joined as it is (as a runtime creating a mount
/// point would).
pub fn resolve_in_root(root: &Path, path: &str) -> io::Result<Resolved> {
    resolve_at(&File::open(root)?, path, &mut HashMap::new())
}

/// [`resolve_in_root`] from the rootfs directory `root`, each path examined
/// relative to it (every directory on the way was found not to be a
/// symlink) and remembered in `steps`.
fn resolve_at(root: &File, path: &str, steps: &mut HashMap<PathBuf, Step>) -> io::Result<Resolved> {
    let mut todo = lexical::components(path.as_bytes());
    let mut current: Vec<Vec<u8>> = Vec::new();
    let mut visited = Vec::new();
    let mut links = 0;
    let mut missing = false;
    // The in-root path of `current`: "/" and its components.
    let in_root = |current: &[Vec<u8>]| {
        PathBuf::from(OsString::from_vec(
            [b"/".to_vec(), current.join(&b'/')].concat(),
        ))
    };
    while let Some(part) = todo.pop_front() {
        match part.as_slice() {
            b"" | b"." => continue,
            b".." => {
                current.pop();
                continue;
            }
            _ => current.push(part),
        }
        let here = in_root(&current);
        visited.push(here.clone());
        if missing {
            continue;
        }
        let step = match steps.get(&here) {
            Some(step) => step.clone(),
            None => {
                let step = examine(root, here.strip_prefix("/").unwrap_or(&here))?;
                steps.insert(here, step.clone());
                step
            }
        };
        match step {
            Step::Link(target, _) => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                current.pop();
                if target.starts_with(b"/") {
                    current.clear();
                }
                lexical::prepend(&mut todo, &target);
            }
            Step::Other(_) => {}
            Step::Missing => missing = true,
        }
    }
    Ok(Resolved {
        path: in_root(&current),
        visited,
    })
}

/// `lstat` (and `readlink` of a symlink) of `relative` under `root`.
fn examine(root: &File, relative: &Path) -> io::Result<Step> {
    let dir = Some(root.as_raw_fd());
    match nix::sys::stat::fstatat(dir, relative, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK => {
            let target = nix::fcntl::readlinkat(dir, relative)?;
            Ok(Step::Link(target.into_vec(), st))
        }
        Ok(st) => Ok(Step::Other(st)),
        Err(Errno::ENOENT) => Ok(Step::Missing),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A hostile tree: links out of the root by every route, loops, links
    /// to links, `..` past the root, dangling links, files as directories.
    fn hostile_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path().join("root");
        for d in ["etc", "real/etc", "a/b/c", "data"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::write(dir.path().join("outside"), "host").unwrap();
        std::fs::write(r.join("outside"), "image").unwrap();
        std::fs::write(r.join("real/etc/group"), "g").unwrap();
        std::fs::write(r.join("etc/passwd"), "p").unwrap();
        // A target that is not UTF-8 is followed byte for byte.
        let not_utf8 = OsString::from_vec(b"real/etc/\xffgroup".to_vec());
        std::fs::write(r.join(&not_utf8), "bytes").unwrap();
        symlink(Path::new("/").join(&not_utf8), r.join("etc/bytes")).unwrap();
        for (link, target) in [
            ("etc/group", "/real/etc/group"),
            ("etc/abs", "/outside"),
            ("etc/rel", "../../../../outside"),
            ("etc/self", "."),
            ("etc/up", ".."),
            ("etc/loop", "loop"),
            ("etc/chain1", "chain2"),
            ("etc/chain2", "/etc/group"),
            ("etc/dangling", "/nowhere/at/all"),
            ("a/b/c/deep", "../../../../../../../etc/passwd"),
            ("a/b/c/dir", "/real/etc"),
            ("data/host-etc", "/etc/../../etc"),
            ("data/proc", "/proc/self/root"),
        ] {
            symlink(target, r.join(link)).unwrap();
        }
        dir
    }

    /// Paths into [`hostile_tree`]: out by every route, loops, dangling
    /// links, files taken for directories, relative and empty paths.
    const HOSTILE_PATHS: &[&str] = &[
        "/etc/group",
        "/etc/bytes",
        "/etc/abs",
        "/etc/rel",
        "/etc/self/group",
        "/etc/up/etc/passwd",
        "/etc/loop",
        "/etc/chain1",
        "/etc/dangling",
        "/a/b/c/deep",
        "/a/b/c/dir/group",
        "/data/host-etc/passwd",
        "/data/proc",
        "/../../outside",
        "/etc/passwd/",
        "/etc/passwd/x",
        "/a/b/../b/c/./deep",
        "etc/group",
        "/",
        "",
        "/etc/group/..",
        "/nothing/here",
        "/a/b/c/../../../../../../outside",
    ];

    fn identity(fd: &OwnedFd) -> (u64, u64) {
        let st = fstat(fd.as_raw_fd()).unwrap();
        (st.st_dev, st.st_ino)
    }

    /// Where the kernel has openat2, the step-by-step resolution reaches the
    /// same inode (or fails the same way) for every path of a hostile tree.
    #[test]
    fn step_by_step_resolution_is_the_kernels() {
        let dir = hostile_tree();
        let root = File::open(dir.path().join("root")).unwrap();
        let paths = HOSTILE_PATHS;
        let mut compared = 0;
        for &path in paths {
            let ours = open_in_root_by_steps(&root, path.as_bytes(), Links::Follow)
                .map(|fd| identity(&fd));
            // Retried as the wrapper retries it: another test renames files.
            match openat2_in_root(&root, path.as_bytes(), Links::Follow) {
                Err(Errno::ENOSYS) => return eprintln!("SKIP: no openat2 to compare with"),
                kernel => {
                    let kernel = kernel.map(|fd| identity(&fd));
                    assert_eq!(ours, kernel, "{path}");
                    compared += 1;
                }
            }
        }
        assert_eq!(compared, paths.len());
    }

    /// What the step-by-step resolution reads, on any kernel (also where
    /// openat2 is missing, as under qemu-user): never the host's file.
    #[test]
    fn step_by_step_resolution_stays_in_the_root() {
        let dir = hostile_tree();
        let root = File::open(dir.path().join("root")).unwrap();
        let read = |path: &str| -> Result<String, Errno> {
            let fd = open_in_root_by_steps(&root, path.as_bytes(), Links::Follow)?;
            let mut s = String::new();
            File::open(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                .unwrap()
                .read_to_string(&mut s)
                .unwrap();
            Ok(s)
        };
        assert_eq!(read("/etc/group").unwrap(), "g");
        assert_eq!(read("/etc/chain1").unwrap(), "g");
        assert_eq!(read("/etc/bytes").unwrap(), "bytes");
        assert_eq!(read("/etc/abs").unwrap(), "image");
        assert_eq!(read("/etc/rel").unwrap(), "image");
        assert_eq!(read("/../../outside").unwrap(), "image");
        assert_eq!(read("/a/b/c/deep").unwrap(), "p");
        assert_eq!(read("/data/host-etc/passwd").unwrap(), "p");
        assert_eq!(read("/etc/loop"), Err(Errno::ELOOP));
        assert_eq!(read("/etc/dangling"), Err(Errno::ENOENT));
        assert_eq!(read("/etc/passwd/x"), Err(Errno::ENOTDIR));
        assert_eq!(read("/data/proc"), Err(Errno::ENOENT));
    }

    /// The kernel fails a `..` of openat2's RESOLVE_IN_ROOT with EAGAIN when
    /// a rename anywhere on the system races it (as mounts and renames do
    /// all the time on a node starting containers): a read through `..`
    /// while another thread renames files elsewhere still gives the file.
    #[test]
    fn a_read_through_dotdot_survives_renames_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/real"), "g").unwrap();
        symlink(
            format!("{}etc/real", "../".repeat(40)),
            root.join("etc/group"),
        )
        .unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let (a, b) = (elsewhere.path().join("a"), elsewhere.path().join("b"));
        std::fs::write(&a, "").unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let renamer = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::fs::rename(&a, &b).unwrap();
                    std::fs::rename(&b, &a).unwrap();
                }
            })
        };
        let root_fd = File::open(&root).unwrap();
        let failed = (0..3000)
            .filter(|_| {
                read_at(&root_fd, b"/etc/group", Links::Follow, 16).map_err(|e| e.to_string())
                    != Ok(Some(b"g".to_vec()))
            })
            .count();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        renamer.join().unwrap();
        assert_eq!(failed, 0, "reads that failed while files were renamed");
    }

    /// Where containerd's and CRI-O's own walks lead elsewhere than the
    /// kernel, `read_as` reads their file; where they lead to the path
    /// itself, it says so; a walk the host would follow out of the rootfs
    /// is refused.
    #[test]
    fn a_runtime_walk_reads_what_the_runtime_reads() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for d in ["etc", "c", "x", "y"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::write(r.join("etc/passwd"), "p").unwrap();
        std::fs::write(r.join("etc/grp"), "dotdot").unwrap();
        symlink("nope/../grp", r.join("etc/group")).unwrap();
        // containerd lstats /b/grp on the host, through b -> c.
        std::fs::write(r.join("c/grp"), "chain").unwrap();
        symlink("/a/grp", r.join("x/group")).unwrap();
        symlink("b", r.join("a")).unwrap();
        symlink("c", r.join("b")).unwrap();
        // ... and /e/grp through e -> /abs: the host's /abs.
        symlink("/d/grp", r.join("y/group")).unwrap();
        symlink("e", r.join("d")).unwrap();
        symlink("/abs", r.join("e")).unwrap();
        let rootfs = Rootfs::new(Some(r.to_path_buf()));
        let read_as = |runtime, file| {
            rootfs
                .read_as(runtime, file, 1 << 20)
                .map(|read| read.map(|bytes| bytes.map(|b| b.to_vec())))
        };
        assert!(rootfs.read("/etc/group", 1 << 20).unwrap().is_none());
        for runtime in [Runtime::Containerd, Runtime::Crio] {
            assert_eq!(
                read_as(runtime, "/etc/group").unwrap(),
                Some(Some(b"dotdot".to_vec()))
            );
            assert_eq!(read_as(runtime, "/etc/passwd").unwrap(), None);
            assert_eq!(read_as(runtime, "/etc/none").unwrap(), None);
        }
        assert_eq!(
            read_as(Runtime::Containerd, "/x/group").unwrap(),
            Some(Some(b"chain".to_vec()))
        );
        assert!(matches!(
            read_as(Runtime::Containerd, "/y/group"),
            Err(RootfsError::AsRuntime(..))
        ));
    }

    /// One rootfs, many questions: each file read once (the second read
    /// gives the first one's bytes), every resolution the same as a fresh
    /// one however many steps it shares with the ones before.
    #[test]
    fn a_rootfs_reads_each_file_once_and_resolves_as_a_fresh_walk() {
        let dir = hostile_tree();
        let root = dir.path().join("root");
        let rootfs = Rootfs::new(Some(root.clone()));
        let first = rootfs.read("/etc/chain1", 1 << 20).unwrap().unwrap();
        assert_eq!(&*first, b"g");
        std::fs::write(root.join("real/etc/group"), "changed").unwrap();
        assert_eq!(
            &*rootfs.read("/etc/chain1", 1 << 20).unwrap().unwrap(),
            b"g"
        );
        assert_eq!(
            &*rootfs.read("/etc/group", 1 << 20).unwrap().unwrap(),
            b"changed"
        );
        assert!(rootfs.read("/nothing", 1 << 20).unwrap().is_none());
        // Twice over: the second round answers from the remembered steps.
        for &path in HOSTILE_PATHS.iter().chain(HOSTILE_PATHS) {
            let fresh = resolve_in_root(&root, path).ok();
            assert_eq!(rootfs.resolve(path).ok(), fresh, "{path}");
        }
        assert!(rootfs.resolve("/etc/loop").is_err());
        let none = Rootfs::new(None);
        assert!(matches!(
            none.read("/etc/group", 1),
            Err(RootfsError::NoRoot)
        ));
    }

    #[test]
    fn resolution_stays_in_the_root_and_names_every_step() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("real/etc")).unwrap();
        std::fs::write(r.join("real/etc/group"), "").unwrap();
        symlink("/real/etc", r.join("etc")).unwrap();
        symlink("../../../../config", r.join("real/link")).unwrap();
        let got = resolve_in_root(r, "/etc/group").unwrap();
        assert_eq!(got.path, Path::new("/real/etc/group"));
        assert_eq!(
            got.visited,
            ["/etc", "/real", "/real/etc", "/real/etc/group"].map(PathBuf::from)
        );
        // `..` stops at the root; a missing part ends the walk.
        let got = resolve_in_root(r, "/real/link/group").unwrap();
        assert_eq!(got.path, Path::new("/config/group"));
        assert_eq!(
            resolve_in_root(r, "/x/../../y").unwrap().path,
            Path::new("/y")
        );
        // A target that is not UTF-8 leads where its bytes say.
        let not_utf8 = Path::new("/").join(OsString::from_vec(b"real/etc/\xffgroup".to_vec()));
        std::fs::write(r.join(not_utf8.strip_prefix("/").unwrap()), "").unwrap();
        symlink(&not_utf8, r.join("bytes")).unwrap();
        assert_eq!(resolve_in_root(r, "/bytes").unwrap().path, not_utf8);
        symlink("loop", r.join("loop")).unwrap();
        assert!(resolve_in_root(r, "/loop").is_err());
    }
}
