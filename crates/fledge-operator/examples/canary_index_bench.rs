//! Benchmark of the controller's canary index (`cargo xtask bench index`): how long mapping
//! one watch event of a Deployment to its canaries takes with N canaries, by index lookup and
//! by the scan of every Canary the controller did before; and how long filing a Canary
//! change takes. Run in release: `cargo run --release -p fledge-operator --example
//! canary_index_bench -- [--canaries N]`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use fledge_api::Canary;
use fledge_operator::controller::canary_index::CanaryIndex;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher;

/// Canaries per namespace, as in a shared cluster with many teams.
const PER_NAMESPACE: usize = 100;

fn canary(namespace: &str, name: &str) -> Canary {
    fledge_api::yaml::from_str(&format!(
        "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {{ name: {name}, namespace: {namespace} }}\nspec:\n  targetRef: {{ apiVersion: apps/v1, kind: Deployment, name: {name} }}\n  service: {{ port: 9898 }}\n  analysis: {{ interval: 1m, threshold: 5, iterations: 5 }}\n"
    ))
    .expect("a valid Canary")
}

/// The controller's mapping before the index: every Canary looked at.
fn scan(store: &reflector::Store<Canary>, namespace: &str, name: &str) -> Vec<ObjectRef<Canary>> {
    store
        .state()
        .iter()
        .filter(|c| {
            c.metadata.namespace.as_deref() == Some(namespace) && c.spec.target_ref.name == name
        })
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

/// The median time per call of `f` over rounds of `calls` calls each, for about `budget`.
fn per_call(budget: Duration, calls: usize, mut f: impl FnMut(usize)) -> Duration {
    let started = Instant::now();
    let mut rounds = Vec::new();
    while rounds.len() < 5 || started.elapsed() < budget {
        let round = Instant::now();
        for i in 0..calls {
            f(i);
        }
        rounds.push(round.elapsed() / u32::try_from(calls).unwrap_or(u32::MAX));
    }
    rounds.sort();
    rounds[rounds.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = match args.as_slice() {
        [] => 10_000,
        [flag, n] if flag == "--canaries" => n.parse().expect("--canaries takes a number"),
        _ => {
            eprintln!("usage: canary_index_bench [--canaries N]");
            std::process::exit(2);
        }
    };
    let canaries: Vec<Canary> = (0..n)
        .map(|i| canary(&format!("team-{}", i / PER_NAMESPACE), &format!("app-{i}")))
        .collect();
    let index = CanaryIndex::default();
    let (store, mut writer) = reflector::store::<Canary>();
    let filing = Instant::now();
    for c in &canaries {
        index.apply(&watcher::Event::Apply(c.clone()));
    }
    let filing = filing.elapsed() / u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    for c in &canaries {
        writer.apply_watcher_event(&watcher::Event::Apply(c.clone()));
    }
    let keys: Vec<(String, String)> = (0..n)
        .map(|i| {
            (
                format!("team-{}", i / PER_NAMESPACE),
                format!("app-{i}-primary"),
            )
        })
        .collect();
    let pick = |i: usize| &keys[(i * 7919) % keys.len()];
    // Sanity: both find the one canary of a primary.
    let (ns, name) = pick(1);
    assert_eq!(index.of_workload(ns, name).len(), 1);
    assert_eq!(scan(&store, ns, name.trim_end_matches("-primary")).len(), 1);

    let budget = Duration::from_secs(2);
    let lookup = per_call(budget, 10_000, |i| {
        let (ns, name) = pick(i);
        black_box(index.of_workload(ns, name));
    });
    let scanned = per_call(budget, 20, |i| {
        let (ns, name) = pick(i);
        black_box(scan(&store, ns, name.trim_end_matches("-primary")));
    });
    let refile = per_call(budget, 10_000, |i| {
        index.apply(&watcher::Event::Apply(canaries[i % n].clone()));
    });
    println!(
        "canary index benchmark: {n} canaries in namespaces of {PER_NAMESPACE}, release build, one thread"
    );
    println!("| measurement | per event |");
    println!("|---|---:|");
    println!("| Deployment event → its canaries, index lookup | {lookup:.2?} |");
    println!("| Deployment event → its canaries, scan of every Canary (before) | {scanned:.2?} |");
    println!("| a Canary filed (first list) | {filing:.2?} |");
    println!("| a Canary re-filed (its watch event, clone included) | {refile:.2?} |");
}
