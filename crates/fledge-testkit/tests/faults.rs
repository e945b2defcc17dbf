//! Faults and bad input: a binary that dies at start, ports already taken, a panicking
//! test, and the leftovers of a run that was killed outright.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use fledge_testkit::process::{ManagedProcess, free_port, is_port_conflict};
use fledge_testkit::stale::{self, process_alive};
use fledge_testkit::{ClusterBinaries, Error, LocalCluster, Tool};

/// Processes whose command line names `dir`.
fn processes_naming(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .expect("procfs")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
                && process_alive(*pid)
        })
        .collect()
}

#[tokio::test]
async fn an_api_server_that_exits_at_start_shows_its_log_tail_and_leaves_nothing_behind() {
    let scripts = tempfile::tempdir().expect("temp dir");
    let broken = scripts.path().join("kube-apiserver");
    std::fs::write(
        &broken,
        "#!/bin/sh\necho 'starting'\necho 'Error: unknown flag: --frobnicate' >&2\nexit 1\n",
    )
    .expect("script");
    std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let binaries = ClusterBinaries {
        etcd: Tool::Etcd.locate().expect("etcd"),
        kube_apiserver: broken,
    };

    let error = LocalCluster::start_with(&binaries)
        .await
        .expect_err("the API server dies");
    let Error::ExitedEarly {
        name, tail, log, ..
    } = &error
    else {
        panic!("unexpected error: {error}")
    };
    assert_eq!(name, "kube-apiserver");
    assert!(tail.contains("Error: unknown flag: --frobnicate"), "{tail}");
    assert!(
        error.to_string().contains("last lines of its log"),
        "{error}"
    );
    // etcd, started first, was stopped with the failed start.
    let cluster_dir = log.parent().expect("log in the cluster dir");
    assert_eq!(processes_naming(cluster_dir), Vec::<u32>::new());
}

#[tokio::test]
async fn a_port_taken_by_someone_else_is_recognised_as_a_conflict() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("temp dir");
    let peer = free_port().expect("port");
    let args = vec![
        format!("--data-dir={}", dir.path().join("data").display()),
        format!("--listen-client-urls=http://127.0.0.1:{port}"),
        format!("--advertise-client-urls=http://127.0.0.1:{port}"),
        format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
        format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
        format!("--initial-cluster=default=http://127.0.0.1:{peer}"),
    ];
    let etcd = Tool::Etcd.locate().expect("etcd");
    let mut process =
        ManagedProcess::spawn("etcd", &etcd, &args, &dir.path().join("etcd.log")).expect("spawn");
    let error = process
        .wait_ready(Duration::from_secs(20), || async { Ok(false) })
        .await
        .expect_err("etcd cannot bind");
    assert!(is_port_conflict(&error), "{error}");
}

#[test]
fn a_panicking_test_leaves_no_process_behind() {
    let (pids_sender, pids) = std::sync::mpsc::channel();
    let outcome = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let cluster = LocalCluster::start().await.expect("local control plane");
            pids_sender
                .send((cluster.pids(), cluster.dir().to_owned()))
                .expect("send");
            panic!("the test under test fails");
        });
    })
    .join();
    assert!(outcome.is_err(), "the inner test panicked");
    let (pids, dir) = pids.recv().expect("the cluster had started");
    for pid in pids {
        assert!(!process_alive(pid), "process {pid} survived the panic");
    }
    // The failed test's files are kept for inspection, logs included.
    assert!(
        dir.join("kube-apiserver.log").is_file(),
        "{} kept",
        dir.display()
    );
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn directories_of_killed_runs_are_swept_with_their_processes() {
    // A run killed outright: its owner is gone, one of its servers still runs.
    let dead_owner = std::process::Command::new("true")
        .spawn()
        .expect("spawn")
        .id();
    std::thread::sleep(Duration::from_millis(100));
    let stale_dir = tempfile::Builder::new()
        .prefix(stale::CLUSTER_DIR_PREFIX)
        .tempdir()
        .expect("dir")
        .keep();
    std::fs::write(stale_dir.join("server.log"), "").expect("log");
    let mut leftover = std::process::Command::new("tail")
        .arg("-f")
        .arg(stale_dir.join("server.log"))
        .spawn()
        .expect("leftover");
    std::fs::write(stale_dir.join("children.pids"), leftover.id().to_string()).expect("pids");
    std::thread::sleep(Duration::from_millis(100));
    assert!(process_alive(leftover.id()), "the leftover server runs");
    // The owner file comes last, as in a real run: a sweep elsewhere skips a directory without one.
    std::fs::write(stale_dir.join("owner.pid"), dead_owner.to_string()).expect("owner");
    // A live run's directory is left alone.
    let live_dir = tempfile::Builder::new()
        .prefix(stale::CLUSTER_DIR_PREFIX)
        .tempdir()
        .expect("dir");
    std::fs::write(
        live_dir.path().join("owner.pid"),
        std::process::id().to_string(),
    )
    .expect("owner");

    stale::sweep();

    assert!(!stale_dir.exists(), "stale directory removed");
    assert!(!process_alive(leftover.id()), "leftover process ended");
    let _ = leftover.wait();
    assert!(live_dir.path().exists(), "a live run's directory is kept");
}

#[tokio::test]
async fn a_process_started_against_a_cluster_is_recorded_for_the_sweep() {
    let cluster = LocalCluster::start().await.expect("local control plane");
    // An operator started with the cluster's kubeconfig names its directory.
    let mut operator = std::process::Command::new("tail")
        .arg("-f")
        .arg(cluster.kubeconfig_path())
        .spawn()
        .expect("spawn");
    cluster.adopt(operator.id()).expect("recorded");
    let recorded = std::fs::read_to_string(cluster.dir().join("children.pids")).expect("pids");
    let recorded: Vec<u32> = recorded.lines().filter_map(|l| l.parse().ok()).collect();
    let [etcd, apiserver] = cluster.pids();
    assert_eq!(recorded, [etcd, apiserver, operator.id()]);
    let _ = operator.kill();
    let _ = operator.wait();
}
