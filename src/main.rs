//! argv in, exit code out: the wrapper's own commands (`commands`), else the
//! runtime wrapper (`wrapper::run`).

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if let Some(code) = strict_groups::commands::run_if_own(&args) {
        std::process::exit(code);
    }
    std::process::exit(strict_groups::wrapper::run(&args));
}
