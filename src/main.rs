//! argv in, exit code out: see `wrapper::run`.

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    std::process::exit(strict_groups::wrapper::run(&args));
}
