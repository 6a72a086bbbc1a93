//! KEP-3619's example, on this machine, in one command (`scripts/demo.sh`):
//! a private containerd configured by `strict-groups configure` from its own
//! `containerd config default`, KEP-3619's image and pod run through the CRI
//! API once with the `runc` handler and once with `strict-groups`, and what
//! each process got printed side by side. Everything it starts is stopped
//! and removed at the end, also when it fails.
//!
//! Needs root, containerd, runc, busybox-static and `STRICT_GROUPS_BIN`
//! (the binary to run as the runtime); `STRICT_GROUPS_CONTAINERD_DIR` picks
//! another containerd, as in the tests.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

use common::containerd::{
    containerd_program, containerd_release, mount_points_under, runnable_config,
};
use common::cri::{CriNode, Pod, PodSpec};
use common::oci_image::OciImage;
use common::wrapper_bin;

const IMAGE: &str = "localhost/strict-groups-demo/kep:1";
const GROUP_IN_IMAGE: u32 = 50000;
const HANDLERS: [&str; 2] = ["runc", "strict-groups"];

/// Set by SIGINT or SIGTERM: the demo stops at its next step and removes
/// what it started (containerd, which shares the terminal's signal, may be
/// gone by then; its shims and mounts are found by the demo's socket and
/// directory).
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The demo's directories once made: checked for leftovers however it ends.
static DIRS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Mounts under the demo's directories, and the directories, still there.
fn left_behind() -> Vec<PathBuf> {
    let dirs = DIRS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mounts = dirs.iter().flat_map(|d| mount_points_under(d));
    mounts
        .chain(dirs.iter().filter(|d| d.exists()).cloned())
        .collect()
}

extern "C" fn interrupted(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn main() {
    // The first signal asks for a clean stop; a second one (the handler is
    // then reset) stops the demo at once, as Ctrl-C always does.
    let action = SigAction::new(
        SigHandler::Handler(interrupted),
        SaFlags::SA_RESETHAND,
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { sigaction(signal, &action) }.expect("installing a signal handler");
    }
    if let Err(missing) = preflight() {
        eprintln!("demo: {missing}");
        std::process::exit(1);
    }
    // A failing step says what failed, without a backtrace; the cleanup
    // then runs as the stack unwinds.
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("a step failed");
        eprintln!("demo: {what}");
    }));
    let outcome = std::panic::catch_unwind(run);
    if outcome.is_err() {
        let left = left_behind();
        let cleaned = if left.is_empty() {
            "what it started is stopped and removed".to_string()
        } else {
            format!("left behind: {left:?}")
        };
        match INTERRUPTED.load(Ordering::SeqCst) {
            true => eprintln!("demo: interrupted; {cleaned}"),
            false => eprintln!("demo: FAILED (above); {cleaned}"),
        }
    }
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(wrong)) => {
            eprintln!("demo: FAILED: {wrong}");
            std::process::exit(1);
        }
        Err(_) if INTERRUPTED.load(Ordering::SeqCst) => std::process::exit(130),
        Err(_) => std::process::exit(1),
    }
}

/// What the demo needs, each named with how to get it.
fn preflight() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("must run as root: it starts containerd and real containers".into());
    }
    let bin = std::env::var("STRICT_GROUPS_BIN")
        .map_err(|_| "STRICT_GROUPS_BIN is not set: run scripts/demo.sh".to_string())?;
    if !Path::new(&bin).is_file() {
        return Err(format!("{bin}: no such binary: run scripts/demo.sh"));
    }
    let containerd = containerd_program("containerd");
    let found = Command::new(&containerd)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        return Err(format!(
            "{} cannot be run: install containerd (apt-get install containerd) or set STRICT_GROUPS_CONTAINERD_DIR",
            containerd.display()
        ));
    }
    for (program, package) in [("runc", "runc")] {
        if Command::new(program).arg("--version").output().is_err() {
            return Err(format!("{program} not found: apt-get install {package}"));
        }
    }
    if !Path::new(common::BUSYBOX).is_file() {
        return Err(format!(
            "{} not found: apt-get install busybox-static (the image is built from it)",
            common::BUSYBOX
        ));
    }
    Ok(())
}

fn step(text: &str) {
    if INTERRUPTED.load(Ordering::SeqCst) {
        panic!("interrupted");
    }
    println!("demo: {text}");
}

/// One handler's results.
struct Ran {
    handler: &'static str,
    main_id: String,
    exec_id: String,
    main_groups: Vec<u32>,
    decision: Option<serde_json::Value>,
    explain: String,
}

fn run() -> Result<(), String> {
    let bin = wrapper_bin();
    let version = Command::new(&bin)
        .arg("version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    step(&format!(
        "{version} ({bin}); containerd {}",
        containerd_release()
    ));

    step("[1/5] containerd config default, then strict-groups configure containerd on it");
    let mut configure_said = String::new();
    let mut node = CriNode::start_from(|path| {
        let default = Command::new(containerd_program("containerd"))
            .args(["config", "default"])
            .output()
            .expect("containerd config default");
        assert!(
            default.status.success(),
            "containerd config default: {default:?}"
        );
        std::fs::write(path, &default.stdout).unwrap();
        let out = Command::new(&bin)
            .args(["configure", "containerd", "--config"])
            .arg(path)
            .args(["--binary", &bin, "--no-backup"])
            .output()
            .expect("strict-groups configure");
        assert!(out.status.success(), "strict-groups configure: {out:?}");
        configure_said = String::from_utf8_lossy(&out.stdout).trim().to_string();
        // The node's paths (/var/lib/containerd, /run/containerd, ...) move
        // under the demo's own directory.
        let configured = std::fs::read_to_string(path).unwrap();
        std::fs::write(path, runnable_config(&configured, path.parent().unwrap())).unwrap();
        step(&format!(
            "[2/5] starting a private containerd: config, root, state and socket under {}",
            path.parent().unwrap().display()
        ));
    });
    step(&format!("      configure: {configure_said}"));
    let ctd_dir = node.containerd.dir.path().to_path_buf();
    let wrapper_dir = node.wrapper_config.parent().unwrap().to_path_buf();
    *DIRS.lock().unwrap() = vec![ctd_dir.clone(), wrapper_dir.clone()];

    step(&format!(
        "[3/5] building KEP-3619's image {IMAGE} (busybox; alice 1000 in group-in-image {GROUP_IN_IMAGE}) and importing it"
    ));
    node.import(&kep_image());

    step("[4/5] KEP-3619's pod (runAsUser: 1000, supplementalGroups: [60000]) through the CRI API");
    let mut ran = Vec::new();
    let mut pods = Vec::new();
    for handler in HANDLERS {
        step(&format!("      on the {handler} handler"));
        let (pod, result) = run_kep_pod(&mut node, handler);
        pods.push(pod);
        ran.push(result);
    }
    print_side_by_side(&ran);

    step("[5/5] removing the pods, stopping containerd and its shims, removing its files");
    let mounts = mount_points_under(&ctd_dir);
    for pod in &pods {
        node.remove_pod(pod);
    }
    drop(node);
    let left = left_behind();
    if !left.is_empty() {
        return Err(format!("left behind: {left:?}"));
    }
    step(&format!(
        "      stopped; its {} mounts gone; {} and {} removed",
        mounts.len(),
        ctd_dir.display(),
        wrapper_dir.display()
    ));
    verdict(&ran)
}

/// KEP-3619's image (the test suite's: alice 1000 in group-in-image 50000),
/// its container printing its `id`, then staying up for the exec.
fn kep_image() -> OciImage {
    OciImage::new(IMAGE).with_files(&common::kep_image()).cmd(&[
        "sh",
        "-c",
        "id; exec sleep 2147483647",
    ])
}

fn run_kep_pod(node: &mut CriNode, handler: &'static str) -> (Pod, Ran) {
    let spec = PodSpec {
        name: format!("kep-{handler}"),
        run_as_user: Some(1000),
        supplemental_groups: vec![60000],
        ..Default::default()
    };
    let pod = node
        .run_pod(handler, &spec)
        .unwrap_or_else(|e| panic!("RunPodSandbox on {handler}: {e}"));
    let decisions_before = node.decisions().len();
    let id = node
        .start_container(&pod, "app", IMAGE)
        .unwrap_or_else(|e| panic!("CreateContainer/StartContainer on {handler}: {e}"));
    let main_id = wait_for_output(node, &pod, "app");
    let (code, exec_id) = node.exec_sync(&id, &["id"]);
    assert_eq!(code, 0, "exec id on {handler}: {exec_id}");
    let (main_groups, _) = node.groups(&id);
    let decision = node.decisions().get(decisions_before).cloned();
    let explain = explain(node, &id);
    let ran = Ran {
        handler,
        main_id,
        exec_id: exec_id.trim().to_string(),
        main_groups,
        decision,
        explain,
    };
    (pod, ran)
}

/// The container's first line of output (its `id`), once the CRI plugin
/// has written it to the container's log.
fn wait_for_output(node: &CriNode, pod: &Pod, name: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let out = node.container_output(pod, name);
        if let Some(line) = out.lines().next() {
            return line.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "container {name} of {} wrote nothing in 10 s",
            pod.spec.name
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `strict-groups explain` on the container's bundle, asking the demo's
/// containerd, as an operator runs it on a node.
fn explain(node: &CriNode, container: &str) -> String {
    let out = Command::new(wrapper_bin())
        .arg("explain")
        .arg("--address")
        .arg(node.containerd.socket())
        .arg("--config")
        .arg(&node.wrapper_config)
        .arg(node.bundle(container))
        .output()
        .expect("strict-groups explain");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn print_side_by_side(ran: &[Ran]) {
    println!();
    println!("What each container's processes got (`id`):");
    for r in ran {
        println!("  {:<15}main  {}", r.handler, r.main_id);
        println!("  {:<15}exec  {}", "", r.exec_id);
    }
    println!();
    println!("The decision the wrapper logged (decision_log):");
    for r in ran {
        match &r.decision {
            Some(d) => println!("  {:<15}{d}", r.handler),
            None => println!(
                "  {:<15}none: containerd runs runc itself, the wrapper is not called",
                r.handler
            ),
        }
    }
    println!();
    for r in ran {
        let note = match r.decision {
            Some(_) => " (its config.json as the wrapper left it)",
            None => " (what the wrapper would have done)",
        };
        println!(
            "strict-groups explain, the container on {}{note}:",
            r.handler
        );
        for line in r.explain.lines() {
            println!("  {line}");
        }
        println!();
    }
}

/// The demo's claim, checked: the image's group reaches the process under
/// runc and not under strict-groups, which logged its removal.
fn verdict(ran: &[Ran]) -> Result<(), String> {
    let [runc, strict] = ran else {
        return Err("two handlers expected".into());
    };
    if !runc.main_groups.contains(&GROUP_IN_IMAGE) {
        return Err(format!(
            "runc's process lacks the image's group {GROUP_IN_IMAGE} ({:?}): this containerd does not merge image groups",
            runc.main_groups
        ));
    }
    if strict.main_groups != [1000, 60000] {
        return Err(format!(
            "strict-groups' process has groups {:?}, not [1000, 60000]",
            strict.main_groups
        ));
    }
    let removed = strict.decision.as_ref().map(|d| d["removed"].clone());
    if removed != Some(serde_json::json!([GROUP_IN_IMAGE])) {
        return Err(format!(
            "the decision did not log {GROUP_IN_IMAGE} as removed: {:?}",
            strict.decision
        ));
    }
    step(&format!(
        "OK: runc gave the process the image's group {GROUP_IN_IMAGE}; strict-groups removed it and kept 1000 (primary) and 60000 (the pod's)"
    ));
    Ok(())
}
