//! Finding the real runtime and handing the process over to it.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// PATH used when the environment has none (the shim normally passes one).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Resolves the configured runtime (an absolute path, or a name looked up on
/// PATH as `exec.LookPath` does) and refuses the wrapper itself: a runtime
/// that resolves to this binary would exec it again, forever.
pub fn resolve(runtime: &str) -> Result<PathBuf> {
    let path = if runtime.contains('/') {
        let p = PathBuf::from(runtime);
        if !is_executable(&p) {
            bail!("runtime {runtime:?} (node config) does not exist or is not executable");
        }
        p
    } else {
        let search = std::env::var_os("PATH").unwrap_or_else(|| OsString::from(DEFAULT_PATH));
        std::env::split_paths(&search)
            .map(|dir| {
                if dir.as_os_str().is_empty() {
                    PathBuf::from(".").join(runtime)
                } else {
                    dir.join(runtime)
                }
            })
            .find(|p| is_executable(p))
            .with_context(|| {
                format!(
                    "runtime {runtime:?} (node config) was not found on PATH ({})",
                    search.to_string_lossy()
                )
            })?
    };
    if is_self(&path) {
        bail!(
            "runtime {runtime:?} (node config) resolves to {}, which is strict-groups itself; \
             set runtime to the real runtime's absolute path (e.g. /usr/bin/runc)",
            path.display()
        );
    }
    Ok(path)
}

/// A regular file with an execute bit.
pub fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Is `p` this very binary? Compared by device and inode with the file this
/// process was executed from: the path the kernel recorded at exec
/// (`AT_EXECFN`; one `stat`, and under qemu-user the program, not the
/// emulator), else `/proc/self/exe` and the path it names. Should that path
/// name another file by now (a binary upgraded since), a wrapper that runs
/// itself is caught one exec later: the second one's `AT_EXECFN` is the very
/// path the first one resolved.
pub fn is_self(p: &Path) -> bool {
    let Ok(other) = std::fs::metadata(p) else {
        return false;
    };
    let meta = |me: &Path| std::fs::metadata(me).ok();
    let same = |me: std::fs::Metadata| me.dev() == other.dev() && me.ino() == other.ino();
    if let Some(me) = exec_path().as_deref().and_then(meta) {
        return same(me);
    }
    let named = std::fs::read_link("/proc/self/exe").ok();
    [Some(PathBuf::from("/proc/self/exe")), named]
        .into_iter()
        .flatten()
        .filter_map(|me| meta(&me))
        .any(same)
}

/// The path this process was executed by (`AT_EXECFN`), relative to the
/// working directory it started in, which the wrapper never changes.
fn exec_path() -> Option<PathBuf> {
    // SAFETY: getauxval reads the auxiliary vector; AT_EXECFN, when present,
    // points at a NUL-terminated string on the initial stack, which lives as
    // long as the process.
    let ptr = unsafe { libc::getauxval(libc::AT_EXECFN) } as *const libc::c_char;
    if ptr.is_null() {
        return None;
    }
    // SAFETY: see above.
    let name = unsafe { std::ffi::CStr::from_ptr(ptr) };
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(name.to_bytes())))
}

/// Replaces this process with `runtime`, passing `args` (argv without
/// argv\[0\]) and the environment unchanged. Returns only on failure.
pub fn exec(runtime: &Path, args: &[OsString]) -> anyhow::Error {
    let to_c = |s: &[u8]| CString::new(s).map_err(|_| anyhow::anyhow!("argument holds a NUL byte"));
    let argv: Result<Vec<CString>> = std::iter::once(runtime.as_os_str())
        .chain(args.iter().map(|a| a.as_os_str()))
        .map(|a| to_c(a.as_bytes()))
        .collect();
    let argv = match argv {
        Ok(argv) => argv,
        Err(e) => return e,
    };
    match nix::unistd::execv(&argv[0], &argv) {
        Ok(never) => match never {},
        Err(e) => anyhow::anyhow!("executing runtime {}: {e}", runtime.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_and_path_lookup() {
        assert_eq!(resolve("/bin/sh").unwrap(), PathBuf::from("/bin/sh"));
        assert!(resolve("/nonexistent/runc").is_err());
        assert!(resolve("/etc/passwd").is_err(), "not executable");
        assert!(resolve("no-such-runtime-anywhere").is_err());
    }

    #[test]
    fn refuses_itself() {
        let me = std::fs::read_link("/proc/self/exe").unwrap();
        let err = resolve(me.to_str().unwrap()).unwrap_err().to_string();
        assert!(err.contains("strict-groups itself"), "{err}");
    }
}
