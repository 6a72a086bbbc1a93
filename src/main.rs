//! argv in, exit code out: the wrapper's own commands (`commands`), else the
//! runtime wrapper (`wrapper::run`).

/// dlmalloc (pure Rust) instead of the C library's malloc: the static musl
/// build's own allocator maps and unmaps memory for most allocations of a
/// short-lived process like this one, which was a quarter of the wrapper's
/// own time on a create (see README, Cost).
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if let Some(code) = strict_groups::commands::run_if_own(&args) {
        std::process::exit(code);
    }
    // A runtime handler may run this binary by a name of its own (a link):
    // the node config's [runtimes] names its real runtime.
    let invoked_as = std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    std::process::exit(strict_groups::wrapper::run(&invoked_as, &args));
}
