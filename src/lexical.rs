//! How containerd and CRI-O find `/etc/passwd` and `/etc/group` in an image:
//! symlinks read one by one, in user space, with `..` and trailing slashes
//! applied to the path's text. The kernel (`openat2` `RESOLVE_IN_ROOT`) takes
//! a `..` only after entering a directory and refuses a trailing `/` on a
//! file, so the two can reach different files: `/etc/group -> nope/../grp`
//! (no `/etc/nope`), `-> hostname/../grp`, `-> grp/` are `/etc/grp` to
//! both runtimes and nothing to the kernel. An image group read by the
//! runtime from a file the wrapper did not read would survive; so the
//! wrapper also resolves each file as the runtime does and reads that file.
//!
//! Ported from the Go code the runtimes run:
//! - containerd 1.6 and 1.7: `fs.RootPath` of github.com/containerd/continuity
//!   (v0.3.0 to v0.4.5 have the same code), then `os.Open`;
//! - CRI-O before 1.31: `SecureJoin` of github.com/cyphar/filepath-securejoin
//!   (v0.2.3 to v0.3.x apply the same steps), then `os.Open`.
//!
//! Pure: the file system is the `lstat` passed in, which answers for an
//! in-root path whether it is a symlink (and its target).

use std::collections::VecDeque;
use std::fmt;

use nix::errno::Errno;

/// A CRI runtime whose resolution of image paths is ported here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    Containerd,
    Crio,
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Runtime::Containerd => "containerd",
            Runtime::Crio => "CRI-O",
        })
    }
}

/// What `lstat` found at an in-root path: a symlink with its target, or
/// (None) anything else that exists.
pub type Found = Result<Option<Vec<u8>>, Errno>;

/// `lstat` of an in-root path.
pub type Lstat<'a> = dyn FnMut(&[u8]) -> Found + 'a;

/// Where a runtime's resolution of a path leads, inside the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// An absolute, clean in-root path.
    pub path: Vec<u8>,
    /// Did it follow a symlink? If not, the kernel's resolution of a clean
    /// path reaches the same file.
    pub followed_links: bool,
}

/// The most symlinks either runtime follows.
const MAX_LINKS: usize = 255;

/// The deepest continuity's recursive walk is taken here: two levels per
/// component of the path a pass starts from. That path is a link's target
/// (under 4096 bytes, so 2048 components) or a directory its host `lstat`
/// took (under 4096 bytes, else ENAMETOOLONG fails containerd's create)
/// joined to one. An image that gets past 4096 components is refused, never
/// walked into a stack overflow.
const MAX_DEPTH: usize = 2 * 4096;

/// continuity's `RootPath(root, path)`: each pass walks the whole path, a
/// symlink's target replacing the link's text, until a pass follows none.
/// A missing component is taken as a plain name; any other `lstat` error
/// (ENOTDIR included: Go's `os.IsNotExist` is ENOENT alone) is an error, as
/// it fails containerd's create.
pub fn containerd_root_path(path: &[u8], lstat: &mut Lstat) -> Result<Resolution, Errno> {
    if path.is_empty() {
        return Ok(Resolution {
            path: b"/".to_vec(),
            followed_links: false,
        });
    }
    let mut path = path.to_vec();
    let mut links = 0;
    loop {
        let before = links;
        path = walk_links(&path, &mut links, lstat, 0)?;
        if links == before {
            let joined = join(b"/", &path);
            if joined == path {
                return Ok(Resolution {
                    path,
                    followed_links: links > 0,
                });
            }
            path = joined;
        }
    }
}

/// continuity's `walkLink`: the path made absolute and clean, and whether
/// it is a symlink (then its target instead).
fn walk_link(path: &[u8], links: &mut usize, lstat: &mut Lstat) -> Result<(Vec<u8>, bool), Errno> {
    if *links > MAX_LINKS {
        return Err(Errno::ELOOP);
    }
    let path = join(b"/", path);
    if path == b"/" {
        return Ok((path, false));
    }
    match lstat(&path) {
        Err(Errno::ENOENT) | Ok(None) => Ok((path, false)),
        Err(e) => Err(e),
        Ok(Some(target)) => {
            *links += 1;
            Ok((target, true))
        }
    }
}

/// continuity's `walkLinks`: the directory part first (recursively), then
/// the last component joined to it; a relative target is joined to the
/// directory by text, an absolute one replaces the path.
fn walk_links(
    path: &[u8],
    links: &mut usize,
    lstat: &mut Lstat,
    depth: usize,
) -> Result<Vec<u8>, Errno> {
    if depth > MAX_DEPTH {
        return Err(Errno::ENAMETOOLONG);
    }
    let (dir, file) = split(path);
    if dir.is_empty() {
        return Ok(walk_link(file, links, lstat)?.0);
    }
    if file.is_empty() {
        // `dir` ends in '/' (split keeps it).
        if dir == b"/" {
            return Ok(dir.to_vec());
        }
        return walk_links(&dir[..dir.len() - 1], links, lstat, depth + 1);
    }
    let new_dir = walk_links(dir, links, lstat, depth + 1)?;
    let (new_path, is_link) = walk_link(&join(&new_dir, file), links, lstat)?;
    if !is_link || new_path.starts_with(b"/") {
        return Ok(new_path);
    }
    Ok(join(&new_dir, &new_path))
}

/// filepath-securejoin's `SecureJoin(root, path)`: components taken one at
/// a time onto a clean path that holds no symlink; a symlink's target is put
/// back in front of what is left (an absolute one from the root). A
/// component that does not exist, or under a file (ENOENT, ENOTDIR), is
/// taken as a plain name; any other `lstat` error is an error.
pub fn crio_secure_join(path: &[u8], lstat: &mut Lstat) -> Result<Resolution, Errno> {
    let mut current: Vec<u8> = Vec::new();
    // What is left of the path, as the components Go's loop takes from its
    // string (all but an empty last one: "a/" is "a"). A link's target goes
    // in front without copying the rest (up to 255 targets of 4 KiB each):
    // Go's `dest + "/" + rest` gives dest's components, then the rest's.
    let mut remaining = components(path);
    if remaining.back().is_some_and(Vec::is_empty) {
        remaining.pop_back();
    }
    let mut links = 0;
    while let Some(part) = remaining.pop_front() {
        let next = clean(&[b"/".as_slice(), &current, b"/", &part].concat());
        if next == b"/" {
            current.clear();
            continue;
        }
        match lstat(&next) {
            Err(Errno::ENOENT) | Err(Errno::ENOTDIR) | Ok(None) => current = next,
            Err(e) => return Err(e),
            Ok(Some(target)) => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(Errno::ELOOP);
                }
                if target.starts_with(b"/") {
                    current.clear();
                }
                prepend(&mut remaining, &target);
            }
        }
    }
    Ok(Resolution {
        path: clean(&[b"/".as_slice(), &current].concat()),
        followed_links: links > 0,
    })
}

/// A path's components as bytes, as the kernel takes them: a symlink's
/// target need not be UTF-8, and is followed as it is.
pub fn components(path: &[u8]) -> VecDeque<Vec<u8>> {
    path.split(|&b| b == b'/').map(<[u8]>::to_vec).collect()
}

/// Puts a symlink's target in front of what is left of a walk, without
/// moving what is left.
pub fn prepend(remaining: &mut VecDeque<Vec<u8>>, target: &[u8]) {
    for part in target.split(|&b| b == b'/').rev() {
        remaining.push_front(part.to_vec());
    }
}

/// Go's `filepath.Clean` on '/' paths: repeated slashes, `.` and `x/..`
/// removed by text, `..` at the root dropped; "." for an empty result.
fn clean(path: &[u8]) -> Vec<u8> {
    let rooted = path.first() == Some(&b'/');
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => match parts.last() {
                Some(&last) if last != b".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(part),
            },
            _ => parts.push(part),
        }
    }
    let body = parts.join(&b'/');
    match (rooted, body.is_empty()) {
        (true, _) => [b"/".as_slice(), &body].concat(),
        (false, true) => b".".to_vec(),
        (false, false) => body,
    }
}

/// Go's `filepath.Join(a, b)`: the non-empty ones joined by '/', cleaned.
fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => Vec::new(),
        (true, false) => clean(b),
        (false, true) => clean(a),
        (false, false) => clean(&[a, b"/", b].concat()),
    }
}

/// Go's `filepath.Split`: everything up to and including the last '/', and
/// the rest.
fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => path.split_at(i + 1),
        None => (&[], path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// An in-memory image: in-root paths that exist, and symlinks.
    struct Fs {
        files: Vec<&'static str>,
        links: HashMap<&'static str, &'static str>,
    }

    impl Fs {
        fn new(files: &[&'static str], links: &[(&'static str, &'static str)]) -> Fs {
            Fs {
                files: files.to_vec(),
                links: links.iter().copied().collect(),
            }
        }

        /// `lstat` as the kernel answers it on a path whose directories
        /// hold no symlink: ENOTDIR under a file, ENOENT where nothing is.
        fn lstat(&self, path: &[u8]) -> Result<Option<Vec<u8>>, Errno> {
            let path = std::str::from_utf8(path).unwrap();
            if let Some(target) = self.links.get(path) {
                return Ok(Some(target.as_bytes().to_vec()));
            }
            let is_dir = |p: &str| {
                p == "/"
                    || self
                        .files
                        .iter()
                        .chain(self.links.keys())
                        .any(|f| f.starts_with(&format!("{p}/")))
            };
            let parent = &path[..path.rfind('/').unwrap().max(1)];
            if !is_dir(parent) && (self.files.contains(&parent) || self.links.contains_key(parent))
            {
                return Err(Errno::ENOTDIR);
            }
            if self.files.contains(&path) || is_dir(path) {
                Ok(None)
            } else {
                Err(Errno::ENOENT)
            }
        }
    }

    fn both(fs: &Fs, path: &str) -> (String, String) {
        let mut lstat = |p: &[u8]| fs.lstat(p);
        let show = |r: Result<Resolution, Errno>| match r {
            Ok(r) => String::from_utf8(r.path).unwrap(),
            Err(e) => format!("{e:?}"),
        };
        let containerd = show(containerd_root_path(path.as_bytes(), &mut lstat));
        let crio = show(crio_secure_join(path.as_bytes(), &mut lstat));
        (containerd, crio)
    }

    /// A path of more components than [`MAX_DEPTH`] is refused, not walked
    /// into a stack overflow (on the wrapper's 8 MiB main stack); one of
    /// 4000 is walked. CRI-O's walk takes 255 targets of 1601 components
    /// each without copying what is left of the path for each.
    #[test]
    fn deep_paths_end_in_an_error_or_an_answer() {
        let walk = |components: usize| {
            std::thread::Builder::new()
                .stack_size(8 << 20)
                .spawn(move || {
                    let path = "/a".repeat(components);
                    let fs = Fs::new(&[], &[]);
                    let mut lstat = |p: &[u8]| fs.lstat(p);
                    containerd_root_path(path.as_bytes(), &mut lstat).map(|r| r.path.len())
                })
                .unwrap()
                .join()
                .unwrap()
        };
        assert_eq!(walk(4000), Ok(8000));
        assert_eq!(walk(5000), Err(Errno::ENAMETOOLONG));
        // /l -> x/../x/../ ... l: 256 times 1601 components, then ELOOP.
        let target = format!("{}l", "x/../".repeat(800));
        let mut lstat =
            |p: &[u8]| -> Found { Ok((p == b"/l").then(|| target.as_bytes().to_vec())) };
        let started = std::time::Instant::now();
        assert_eq!(crio_secure_join(b"/l", &mut lstat), Err(Errno::ELOOP));
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn go_path_helpers() {
        let c = |p: &str| String::from_utf8(clean(p.as_bytes())).unwrap();
        assert_eq!(c(""), ".");
        assert_eq!(c("/"), "/");
        assert_eq!(c("//a/./b/"), "/a/b");
        assert_eq!(c("/../a/../../b"), "/b");
        assert_eq!(c("a/../.."), "..");
        assert_eq!(c("../a/b/../c"), "../a/c");
        assert_eq!(c("a/b/.."), "a");
        assert_eq!(join(b"", b""), b"");
        assert_eq!(join(b"/", b"etc"), b"/etc");
        assert_eq!(join(b"/etc", b"../x"), b"/x");
        assert_eq!(
            split(b"/etc/group"),
            (b"/etc/".as_slice(), b"group".as_slice())
        );
        assert_eq!(split(b"group"), (b"".as_slice(), b"group".as_slice()));
        assert_eq!(split(b"/etc/"), (b"/etc/".as_slice(), b"".as_slice()));
    }

    /// The shapes where the runtimes' reading of the text and the kernel's
    /// walk part: both runtimes read /etc/grp.
    #[test]
    fn dotdot_and_trailing_slashes_are_text_to_both_runtimes() {
        let files = ["/etc/grp", "/etc/hostname", "/usr/lib"];
        for target in [
            "nope/../grp",
            "/nope/../etc/grp",
            "hostname/../grp",
            "grp/",
            "grp/.",
            "./grp",
            "/etc/grp",
            "../../etc/grp",
        ] {
            let fs = Fs::new(&files, &[("/etc/group", target)]);
            let want = "/etc/grp".to_string();
            assert_eq!(both(&fs, "/etc/group"), (want.clone(), want), "{target}");
        }
    }

    /// Where the two runtimes part: containerd cleans `sub/..` by text
    /// before it looks at `sub`; CRI-O follows `sub` first.
    #[test]
    fn containerd_cleans_a_link_then_dotdot_by_text() {
        let fs = Fs::new(
            &["/etc/grp", "/usr/grp"],
            &[("/etc/group", "sub/../grp"), ("/etc/sub", "/usr/x")],
        );
        assert_eq!(
            both(&fs, "/etc/group"),
            ("/etc/grp".into(), "/usr/grp".into())
        );
        // An absolute target ending in a link, then `..`: containerd takes
        // the `..` from the link's text, CRI-O from where the link leads.
        let fs = Fs::new(
            &["/c/grp", "/x/grp", "/x/y"],
            &[
                ("/etc/group", "/l/../grp"),
                ("/l", "/c/d"),
                ("/c/d", "/x/y"),
            ],
        );
        assert_eq!(both(&fs, "/etc/group"), ("/c/grp".into(), "/x/grp".into()));
    }

    #[test]
    fn plain_files_links_and_loops() {
        let fs = Fs::new(
            &["/etc/group", "/real/etc/passwd"],
            &[("/etc/passwd", "/real/etc/passwd")],
        );
        let mut lstat = |p: &[u8]| fs.lstat(p);
        let plain = containerd_root_path(b"/etc/group", &mut lstat).unwrap();
        assert_eq!(
            (plain.path.as_slice(), plain.followed_links),
            (b"/etc/group".as_slice(), false)
        );
        let plain = crio_secure_join(b"/etc/group", &mut lstat).unwrap();
        assert_eq!(
            (plain.path.as_slice(), plain.followed_links),
            (b"/etc/group".as_slice(), false)
        );
        let linked = crio_secure_join(b"/etc/passwd", &mut lstat).unwrap();
        assert_eq!(
            (linked.path.as_slice(), linked.followed_links),
            (b"/real/etc/passwd".as_slice(), true)
        );
        assert_eq!(
            both(&fs, "/etc/none"),
            ("/etc/none".into(), "/etc/none".into())
        );
        // A file taken for a directory: containerd's lstat fails (ENOTDIR),
        // CRI-O takes the name as missing.
        assert_eq!(
            both(&fs, "/etc/group/x"),
            ("ENOTDIR".into(), "/etc/group/x".into())
        );
        let fs = Fs::new(
            &[],
            &[("/etc/group", "/etc/loop"), ("/etc/loop", "/etc/group")],
        );
        let elo = "ELOOP".to_string();
        assert_eq!(both(&fs, "/etc/group"), (elo.clone(), elo));
        // `..` never leaves the root.
        let fs = Fs::new(&["/outside"], &[("/etc/group", "../../../../outside")]);
        assert_eq!(
            both(&fs, "/etc/group"),
            ("/outside".into(), "/outside".into())
        );
    }
}
