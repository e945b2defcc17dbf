//! Fledge's loadtester: Flagger's loadtester API (`flagger-loadtester`) with a built-in `hey`.
//!
//! Every Flagger tutorial points its Canary's webhooks at the loadtester: manual gates
//! (`/gate/check`, `/gate/open`, ...), rollbacks (`/rollback/open`), acceptance tests
//! (`type: bash` running `curl`) and load tests (`hey -z 1m -q 10 -c 2 http://...`). This crate
//! serves the same routes with the same answers ([`server`]), runs the same task types
//! ([`task`], [`concord`]) and keeps gates per canary ([`gate`]); a command that is a plain
//! `hey ...` runs in the built-in generator ([`hey`]) so no Go binary is needed.
//!
//! Embedding it (a test that needs a loadtester on a free port):
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use fledge_loadtester::{Config, LoadTester};
//! let config = Config {
//!     address: ([127, 0, 0, 1], 0).into(),
//!     ..Config::default()
//! };
//! let loadtester = LoadTester::start(config).await?;
//! println!("http://{}/", loadtester.local_addr());
//! loadtester.stop().await;
//! # Ok(())
//! # }
//! ```

pub mod concord;
pub mod config;
pub mod gate;
pub mod goflag;
pub mod hey;
pub mod logging;
pub mod payload;
pub mod server;
pub mod target;
pub mod task;

pub use config::{Config, ConfigError, LogLevel};
pub use gate::{GateStore, Switch};
pub use hey::{Generator, HeyOptions, Report};
pub use payload::WebhookPayload;
pub use server::LoadTester;
pub use target::TargetServer;
pub use task::{Task, TaskKind, TaskRunner};
