//! Commands under a deadline: a hang fails the test, shows where each
//! process below the command waits, and leaves none of them behind.
//!
//! A hang of the wrapper, of the runtime it executes or of a container would
//! otherwise stall the whole suite until CI's limit, with nothing to show.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a container command of the suite may take. Each takes well under
/// a second here; a generous bound keeps a loaded machine from failing them.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Runs `cmd` and waits for it at most `deadline`. Its stdout and stderr go
/// to files, not pipes: a container that keeps them open after its runtime
/// exits cannot stall the read. On a hang it prints the process tree below
/// `cmd` (each process's state, kernel wait channel, pending and blocked
/// signals, kernel stack), kills that tree and panics.
pub fn output_within(mut cmd: Command, deadline: Duration) -> Output {
    let out_file = tempfile::NamedTempFile::new().unwrap();
    let err_file = tempfile::NamedTempFile::new().unwrap();
    cmd.stdin(Stdio::null())
        .stdout(out_file.reopen().unwrap())
        .stderr(err_file.reopen().unwrap());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let start = Instant::now();
    let mut looked = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if looked.elapsed() > NUDGE_AFTER {
            looked = Instant::now();
            let pids = tree(child.id());
            for &youki in pids.iter().filter(|&&p| missed_child_exit(p, &pids)) {
                eprintln!("youki {youki} missed its container's exit: SIGCHLD sent");
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(youki as i32),
                    nix::sys::signal::Signal::SIGCHLD,
                );
            }
        }
        if start.elapsed() > deadline {
            // Shown before the kill: a process the kill cannot reach (in
            // uninterruptible sleep, frozen) would keep the wait below.
            let pids = tree(child.id());
            let shown: Vec<String> = pids.iter().map(|&pid| describe(pid)).collect();
            eprintln!(
                "hung for {deadline:?}: {cmd:?}\nits processes (now killed):\n{}\nstderr so far: {}",
                shown.join("\n"),
                String::from_utf8_lossy(&std::fs::read(err_file.path()).unwrap_or_default())
            );
            for &pid in &pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let killed = Instant::now();
            while child.try_wait().unwrap().is_none() && killed.elapsed() < KILL_WAIT {
                std::thread::sleep(Duration::from_millis(5));
            }
            panic!("hung for {deadline:?}: {cmd:?} (its processes are shown above)");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: std::fs::read(out_file.path()).unwrap(),
        stderr: std::fs::read(err_file.path()).unwrap(),
    }
}

/// How long a killed command is waited for before the test fails anyway.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// How long a runtime may leave its exited container unreaped before it is
/// taken to have missed the SIGCHLD (and how often that is looked at).
const NUDGE_AFTER: Duration = Duration::from_secs(2);

/// youki 0.7.0's foreground `run` blocks signals only after it has started
/// the container (crates/youki/src/commands/run.rs, `handle_foreground`): a
/// container that exits before that sends a SIGCHLD nobody blocks, which its
/// default disposition discards, and youki then waits in sigwait forever
/// (runc 1.3.0-1.3.4 had the same race, fixed upstream by registering
/// SIGCHLD before the start). True when `pid` is youki and has a child
/// among `pids` (its process tree) that it did not reap.
/// Only `run` in the tests meets this: containerd and conmon use create and
/// start.
fn missed_child_exit(pid: u32, pids: &[u32]) -> bool {
    let is_youki = std::fs::read_link(format!("/proc/{pid}/exe"))
        .is_ok_and(|exe| exe.file_name().is_some_and(|n| n == "youki"));
    is_youki
        && pids
            .iter()
            .any(|&p| parent_of(p) == Some(pid) && state_of(p) == Some('Z'))
}

fn state_of(pid: u32) -> Option<char> {
    stat_fields(pid)?.chars().next()
}

/// `/proc/PID/stat` from its third field (state, parent, ...): the command
/// name before it may hold spaces and parentheses, so it ends at the last ')'.
fn stat_fields(pid: u32) -> Option<String> {
    // Bytes: a command name cut at 15 bytes may end inside a UTF-8 sequence.
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.iter().rposition(|&b| b == b')')? + 2;
    Some(String::from_utf8_lossy(stat.get(after..)?).into_owned())
}

/// `root` and every process descending from it (by parent pid), root first.
fn tree(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, parent_of(pid)?)))
        .collect();
    let mut pids = vec![root];
    let mut i = 0;
    while i < pids.len() {
        let parent = pids[i];
        pids.extend(parents.iter().filter(|p| p.1 == parent).map(|p| p.0));
        i += 1;
    }
    pids
}

fn parent_of(pid: u32) -> Option<u32> {
    stat_fields(pid)?.split(' ').nth(1)?.parse().ok()
}

/// One process: its command line, and for each of its threads the state,
/// wait channel and signal masks, then its kernel stack.
fn describe(pid: u32) -> String {
    let read = |path: String| {
        String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
    };
    let cmdline = read(format!("/proc/{pid}/cmdline")).replace('\0', " ");
    let mut out = format!("pid {pid}: {}", cmdline.trim());
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok());
    for tid in tasks {
        let status = read(format!("/proc/{pid}/task/{tid}/status"));
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
                .unwrap_or("?")
                .to_string()
        };
        out += &format!(
            "\n  task {tid} {}: state {}, wchan {}, pending {} (process {}), blocked {}",
            field("Name:"),
            field("State:"),
            read(format!("/proc/{pid}/task/{tid}/wchan")),
            field("SigPnd:"),
            field("ShdPnd:"),
            field("SigBlk:"),
        );
    }
    let stack = read(format!("/proc/{pid}/stack"));
    for line in stack.lines() {
        out += &format!("\n    {line}");
    }
    out
}
