//! `cargo xtask demo`: the Flagger + Istio tutorial, end to end, on this machine.
//!
//! Builds `fledge-operator`, starts the playground of `cargo xtask cluster` (etcd,
//! kube-apiserver, Fledge's and the mesh CRDs, the cluster and traffic simulators, a
//! Prometheus scraping the simulated Istio metrics), runs the real operator binary against
//! it, and releases podinfo twice as the tutorial does: a healthy version that is promoted,
//! then a version answering 30% of its requests with errors, which is rolled back. It prints
//! the `Synced` events and `kubectl get canaries` lines as they come, then a summary.
//! Everything it started is stopped when it ends, also on Ctrl-C.
//!
//! The operator acts as the ServiceAccount of `deploy/kustomize/base` with exactly the
//! shipped RBAC (the demo's own steps use the admin); a request RBAC refused fails `--check`.
//!
//! `--check` makes it a test: it fails unless every step of both stories was seen.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fledge_api::{Canary, CanaryPhase, CanaryStatus};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use crate::cluster::{self, Playground};
use crate::control_plane;
use crate::operator::{self, Operator};

/// The namespace and name the tutorial uses.
const NAMESPACE: &str = "test";
const APP: &str = "podinfo";
/// The container `kubectl set image` names.
const CONTAINER: &str = "podinfod";
const HEALTHY_IMAGE: &str = "ghcr.io/stefanprodan/podinfo:6.0.1";
const BAD_IMAGE: &str = "ghcr.io/stefanprodan/podinfo:6.0.2";
/// Share of the bad version's requests that fail.
const BAD_ERROR_RATE: &str = "0.3";
/// Requests per second the traffic simulator sends to podinfo.
const RATE: f64 = 20.0;
/// How long each stage may take before the demo gives up.
const INITIALIZATION_LIMIT: Duration = Duration::from_secs(90);
const ROLLOUT_LIMIT: Duration = Duration::from_secs(240);
/// How often the Canary and its Events are read.
const POLL: Duration = Duration::from_millis(250);

/// The demo's options.
#[derive(Debug, Default)]
struct Options {
    /// Fail unless every expected step of both stories was seen.
    check: bool,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options::default();
    for arg in args {
        match arg.as_str() {
            "--check" => options.check = true,
            other => bail!("unknown argument {other:?}; usage: cargo xtask demo [--check]"),
        }
    }
    Ok(options)
}

/// Runs the command.
pub fn run(args: &[String]) -> Result<()> {
    let options = parse(args)?;
    let manifests = Manifests::read(&crate::workspace_root().join("examples/demo"))?;
    println!("==> control plane binaries");
    control_plane::ensure()?;
    println!("==> building fledge-operator");
    let binary = operator::build(false)?;
    // Dropping the demo's future (Ctrl-C) drops the operator and the playground it holds,
    // which stops their processes.
    cluster::run_until_stopped(
        demo(&options, &binary, &manifests),
        "interrupted: the operator, the simulators, Prometheus and the control plane were stopped; nothing is left running",
    )
}

/// The demo's manifests from `examples/demo/`, checked before anything starts.
struct Manifests {
    podinfo: String,
    canary: String,
}

impl Manifests {
    fn read(dir: &Path) -> Result<Self> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))
        };
        let manifests = Self {
            podinfo: read("podinfo.yaml")?,
            canary: read("canary.yaml")?,
        };
        manifests.validate()?;
        Ok(manifests)
    }

    /// The Canary must be valid for Fledge and name the Deployment in `podinfo.yaml`.
    fn validate(&self) -> Result<()> {
        let reports = fledge_api::validation::validate_yaml(&self.canary)
            .context("examples/demo/canary.yaml is not YAML")?;
        let mut problems = String::new();
        for report in &reports {
            for problem in &report.problems {
                let _ = writeln!(problems, "  {problem}");
            }
        }
        if !problems.is_empty()
            || !reports
                .iter()
                .any(fledge_api::validation::DocumentReport::is_valid)
        {
            bail!("examples/demo/canary.yaml is not a valid Canary:\n{problems}");
        }
        let canary: Canary =
            fledge_api::yaml::from_str(&self.canary).context("read examples/demo/canary.yaml")?;
        let deployment: Deployment =
            fledge_api::yaml::from_str(&self.podinfo).context("read examples/demo/podinfo.yaml")?;
        if canary.spec.target_ref.name != APP
            || deployment.metadata.name.as_deref() != Some(APP)
            || canary.metadata.namespace.as_deref() != Some(NAMESPACE)
            || deployment.metadata.namespace.as_deref() != Some(NAMESPACE)
        {
            bail!(
                "examples/demo/: the demo releases {NAMESPACE}/{APP}; the manifests name another"
            );
        }
        Ok(())
    }
}

/// What the demo runs; dropping it stops all of it, the operator first.
struct Stage {
    operator: Operator,
    playground: Playground,
}

async fn demo(options: &Options, binary: &Path, manifests: &Manifests) -> Result<()> {
    let started = Instant::now();
    let mut stage = start_stage(binary).await?;
    let client = stage.playground.cluster.client();
    let mut watch = Watch::new(&client, started);
    let timings = releases(&mut stage, &mut watch, manifests).await?;

    let deployments: Api<Deployment> = Api::namespaced(client, NAMESPACE);
    let primary = deployments
        .get(&format!("{APP}-primary"))
        .await
        .context("read the primary Deployment")?;
    let primary_image = image(&primary).unwrap_or_default();
    let canary = deployments
        .get(APP)
        .await
        .context("read the canary Deployment")?;
    let canary_replicas = canary.spec.and_then(|s| s.replicas);
    let counts = stage
        .playground
        .traffic_sim
        .counts(NAMESPACE, APP)
        .unwrap_or_default();

    println!();
    println!("==> summary");
    let [initialized, promoted, failed] = timings.map(|t| t.as_secs_f64());
    println!("  initialized           in {initialized:>5.1} s");
    println!("  6.0.1 (healthy)       promoted in {promoted:>5.1} s");
    println!("  6.0.2 (30% errors)    rolled back in {failed:>5.1} s");
    println!("  primary now runs      {primary_image}");
    println!(
        "  canary replicas       {}",
        canary_replicas.map_or_else(|| "unset".to_owned(), |r| r.to_string())
    );
    println!(
        "  simulated requests    {} to the primary, {} to the canary, {} answered 5xx",
        counts.primary, counts.canary, counts.errors
    );
    println!("  Synced events         {}", watch.story.len());
    println!(
        "  operator log          {}",
        stage.operator.log_path().display()
    );
    println!(
        "  whole demo            {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let mut missing = if options.check {
        check(&watch.story, &primary_image, canary_replicas)
    } else {
        Vec::new()
    };
    let forbidden = stage.playground.cluster.operator_forbidden_requests()?;
    println!(
        "  requests refused      {} (the operator acts as its ServiceAccount)",
        forbidden.len()
    );
    missing.extend(
        forbidden
            .iter()
            .map(|request| format!("a request the shipped RBAC allows, not: {request}")),
    );
    let Stage {
        operator,
        playground,
    } = stage;
    drop(operator);
    playground.stop();
    println!("  stopped the operator, the simulators, Prometheus and the control plane");
    if !missing.is_empty() {
        bail!("--check: not seen:\n  {}", missing.join("\n  "));
    }
    if options.check {
        println!("==> demo check passed: promoted the healthy version, rolled back the bad one");
    }
    Ok(())
}

/// Starts the playground and the operator on it.
async fn start_stage(binary: &Path) -> Result<Stage> {
    println!("==> local cluster");
    let apps = [(NAMESPACE.to_owned(), APP.to_owned())];
    let playground = cluster::start(&apps, RATE).await?;
    println!(
        "  traffic: {RATE} requests/s to {NAMESPACE}/{APP}; Prometheus at {}",
        playground.prometheus.url()
    );
    println!(
        "  export KUBECONFIG={}   (to look around while it runs)",
        playground.cluster.kubeconfig_path().display()
    );
    playground.cluster.install_operator_rbac().await?;
    let log = operator::run_dir("fledge-demo")?.join("fledge-operator.log");
    let mut args = operator::flags(
        playground.cluster.operator_kubeconfig_path(),
        NAMESPACE,
        "istio",
        Some(playground.prometheus.url()),
    )?;
    // Flagger's Lease is looked for where the shipped Role lets the operator read it (given
    // -namespace, the watched namespace would be the default).
    args.push(format!(
        "-flagger-lease-namespace={}",
        playground.cluster.operator_identity().namespace
    ));
    let operator = Operator::spawn(binary, &args, &log)?;
    // Ended by the next start's sweep should this process be killed outright.
    playground.cluster.adopt(operator.pid())?;
    println!("==> fledge-operator {}", args.join(" "));
    println!("  pid {}, log {}", operator.pid(), log.display());
    Ok(Stage {
        operator,
        playground,
    })
}

/// The tutorial: apply podinfo and its Canary, release a healthy version, then a bad one.
/// Returns how long the initialization, the promotion and the rollback took.
async fn releases(
    stage: &mut Stage,
    watch: &mut Watch,
    manifests: &Manifests,
) -> Result<[Duration; 3]> {
    let client = stage.playground.cluster.client();
    println!("==> kubectl apply -f examples/demo/podinfo.yaml -f examples/demo/canary.yaml");
    for (text, origin) in [
        (&manifests.podinfo, "examples/demo/podinfo.yaml"),
        (&manifests.canary, "examples/demo/canary.yaml"),
    ] {
        fledge_testkit::manifests::apply_yaml(&client, text, origin, NAMESPACE).await?;
    }
    println!();
    Watch::print_header();
    let initialized = watch
        .follow(
            &mut stage.operator,
            INITIALIZATION_LIMIT,
            "initialized",
            |s, _| s.phase == CanaryPhase::Initialized,
        )
        .await?;

    println!();
    println!("==> kubectl -n {NAMESPACE} set image deployment/{APP} {CONTAINER}={HEALTHY_IMAGE}");
    set_image(&client, HEALTHY_IMAGE, None).await?;
    let from = watch.story.len();
    let promoted = watch
        .follow(
            &mut stage.operator,
            ROLLOUT_LIMIT,
            "promoted",
            |s, story| {
                s.phase == CanaryPhase::Succeeded
                    && story[from..]
                        .iter()
                        .any(|m| m.starts_with("Promotion completed!"))
            },
        )
        .await?;

    println!();
    println!(
        "==> kubectl -n {NAMESPACE} set image deployment/{APP} {CONTAINER}={BAD_IMAGE}  (with FLEDGE_SIM_ERROR_RATE={BAD_ERROR_RATE}: 30% of its requests fail)"
    );
    set_image(&client, BAD_IMAGE, Some(BAD_ERROR_RATE)).await?;
    let from = watch.story.len();
    let failed = watch
        .follow(
            &mut stage.operator,
            ROLLOUT_LIMIT,
            "rolled back",
            |s, story| {
                s.phase == CanaryPhase::Failed
                    && story[from..]
                        .iter()
                        .any(|m| m.starts_with("Canary failed!"))
            },
        )
        .await?;
    Ok([initialized, promoted, failed])
}

/// What `--check` expects; returns what is missing.
fn check(story: &[String], primary_image: &str, canary_replicas: Option<i32>) -> Vec<String> {
    let target = format!("{APP}.{NAMESPACE}");
    let mut expected = vec![
        format!("Initialization done! {target}"),
        format!("New revision detected! Scaling up {target}"),
    ];
    for weight in [20, 40, 60] {
        expected.push(format!("Advance {target} canary weight {weight}"));
    }
    expected.extend([
        format!("Copying {target} template spec to {APP}-primary.{NAMESPACE}"),
        format!("Promotion completed! Scaling down {target}"),
        format!("Halt {target} advancement success rate "),
        format!("Rolling back {target} failed checks threshold reached 2"),
        format!("Canary failed! Scaling down {target}"),
    ]);
    let mut missing: Vec<String> = expected
        .into_iter()
        .filter(|e| !story.iter().any(|m| m.starts_with(e.as_str())))
        .map(|e| format!("event {e:?}"))
        .collect();
    let revisions = story
        .iter()
        .filter(|m| m.starts_with("New revision detected!"))
        .count();
    if revisions < 2 {
        missing.push(format!(
            "two \"New revision detected!\" events (one per release), saw {revisions}"
        ));
    }
    if primary_image != HEALTHY_IMAGE {
        missing.push(format!(
            "the primary on {HEALTHY_IMAGE} after the rollback (it runs {primary_image:?})"
        ));
    }
    if canary_replicas != Some(0) {
        missing.push(format!(
            "the canary scaled to 0 after the rollback (replicas {canary_replicas:?})"
        ));
    }
    missing
}

/// `kubectl set image` (and `set env` for a bad version): a strategic merge patch.
async fn set_image(client: &kube::Client, image: &str, error_rate: Option<&str>) -> Result<()> {
    let mut container = json!({ "name": CONTAINER, "image": image });
    if let Some(rate) = error_rate {
        container["env"] = json!([{ "name": "FLEDGE_SIM_ERROR_RATE", "value": rate }]);
    }
    let patch = json!({ "spec": { "template": { "spec": { "containers": [container] } } } });
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    deployments
        .patch(APP, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .with_context(|| format!("set the image of {NAMESPACE}/{APP} to {image}"))?;
    Ok(())
}

fn image(deployment: &Deployment) -> Option<String> {
    deployment
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .image
        .clone()
}

/// Follows the Canary and its `Synced` events, printing what changes.
struct Watch {
    canaries: Api<Canary>,
    events: Api<Event>,
    started: Instant,
    /// Events seen, by name, with the count of their series.
    seen: HashMap<String, i32>,
    /// The Synced messages in the order they came (a repeat counts again).
    story: Vec<String>,
    /// The last `kubectl get canaries` row printed.
    row: Option<String>,
}

impl Watch {
    fn new(client: &kube::Client, started: Instant) -> Self {
        Self {
            canaries: Api::namespaced(client.clone(), NAMESPACE),
            events: Api::namespaced(client.clone(), NAMESPACE),
            started,
            seen: HashMap::new(),
            story: Vec::new(),
            row: None,
        }
    }

    fn print_header() {
        println!(
            "{:>7}  {:<8} {:<12} {:>6}  LASTTRANSITIONTIME",
            "", "NAME", "STATUS", "WEIGHT"
        );
    }

    fn stamp(&self) -> String {
        let elapsed = self.started.elapsed().as_secs();
        format!("[{:02}:{:02}]", elapsed / 60, elapsed % 60)
    }

    /// Polls until `done` holds for the Canary's status and the story so far, printing new
    /// events and status rows; returns how long it took. Fails after `limit`, or when the
    /// operator exits, with what was seen last.
    async fn follow(
        &mut self,
        operator: &mut Operator,
        limit: Duration,
        goal: &str,
        done: impl Fn(&CanaryStatus, &[String]) -> bool,
    ) -> Result<Duration> {
        let started = Instant::now();
        loop {
            operator.check_alive()?;
            let status = self.poll().await?;
            if status.as_ref().is_some_and(|s| done(s, &self.story)) {
                return Ok(started.elapsed());
            }
            if started.elapsed() > limit {
                bail!(
                    "the canary was not {goal} within {} s (status: {}); the operator's last log lines ({}):\n{}",
                    limit.as_secs(),
                    self.row.as_deref().unwrap_or("none"),
                    operator.log_path().display(),
                    operator.log_tail(15)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Reads the Canary and its events once; prints what is new. The Canary is read first
    /// so the events that led to its status print before its row.
    async fn poll(&mut self) -> Result<Option<CanaryStatus>> {
        let canary = self
            .canaries
            .get_opt(APP)
            .await
            .context("read the Canary")?;
        let mut events = self
            .events
            .list(&ListParams::default())
            .await
            .context("list the Events")?
            .items;
        events.retain(|e| e.reason.as_deref() == Some("Synced"));
        events.sort_by_key(|e| {
            e.series
                .as_ref()
                .map(|s| s.last_observed_time.0)
                .or_else(|| e.event_time.as_ref().map(|t| t.0))
        });
        for event in events {
            let name = event.metadata.name.clone().unwrap_or_default();
            let count = event.series.as_ref().map_or(1, |s| s.count.max(1));
            let before = self.seen.insert(name, count).unwrap_or(0);
            if count <= before {
                continue;
            }
            let note = event.note.unwrap_or_default();
            let kind = event.type_.unwrap_or_default();
            println!("{}  {kind:<7}  Synced  {note}", self.stamp());
            self.story.push(note);
        }
        let Some(canary) = canary else {
            return Ok(None);
        };
        let status = canary.status.unwrap_or_default();
        let transition = status
            .last_transition_time
            .as_ref()
            .and_then(|t| serde_json::to_value(t).ok())
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let row = format!(
            "{:<8} {:<12} {:>6}  {transition}",
            APP, status.phase, status.canary_weight
        );
        if self.row.as_deref() != Some(row.as_str()) {
            println!("{}  {row}", self.stamp());
            self.row = Some(row);
        }
        Ok(Some(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_manifests_are_valid() {
        Manifests::read(&crate::workspace_root().join("examples/demo"))
            .expect("examples/demo is valid");
    }

    #[test]
    fn check_names_each_missing_step() {
        let missing = check(
            &["Initialization done! podinfo.test".to_owned()],
            HEALTHY_IMAGE,
            Some(0),
        );
        assert!(
            missing
                .iter()
                .any(|m| m.contains("Canary failed! Scaling down podinfo.test")),
            "{missing:?}"
        );
        assert!(!missing.iter().any(|m| m.contains("Initialization done!")));
    }
}
