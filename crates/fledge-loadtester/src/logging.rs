//! JSON log lines shaped like Flagger's (zap's): `level`, `ts`, `msg`, then the event's fields
//! (`canary`), so that `kubectl logs deploy/flagger-loadtester | jq .msg` reads as with
//! Flagger's loadtester. `-zap-encoding=console` writes plain text lines instead.

use std::fmt::Write as _;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogLevel;

/// Formats each event as one JSON object on one line.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonLines;

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let metadata = event.metadata();
        let mut line = Map::new();
        line.insert(
            "level".to_owned(),
            Value::from(level_name(*metadata.level())),
        );
        line.insert(
            "ts".to_owned(),
            Value::from(k8s_openapi::jiff::Timestamp::now().to_string()),
        );
        line.insert("msg".to_owned(), Value::from(""));
        event.record(&mut LineFields(&mut line));
        if !metadata.target().starts_with("fledge") {
            line.insert("logger".to_owned(), Value::from(metadata.target()));
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

fn level_name(level: tracing::Level) -> &'static str {
    match level {
        tracing::Level::TRACE | tracing::Level::DEBUG => "debug",
        tracing::Level::INFO => "info",
        tracing::Level::WARN => "warn",
        tracing::Level::ERROR => "error",
    }
}

/// Collects an event's fields; its message becomes `msg`.
struct LineFields<'a>(&'a mut Map<String, Value>);

impl LineFields<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let key = match field.name() {
            "message" => "msg",
            name => name,
        };
        self.0.insert(key.to_owned(), value);
    }
}

impl Visit for LineFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.put(field, Value::from(text));
    }
}

/// Installs the process-wide subscriber: JSON lines ([`JsonLines`]) or, with `console`,
/// tracing's plain text, at `level` (refined per module by `RUST_LOG`).
pub fn install<W>(level: LogLevel, console: bool, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::builder()
        .with_default_directive(level.filter().into())
        .from_env_lossy();
    let result = if console {
        tracing::subscriber::set_global_default(
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(writer)
                .finish(),
        )
    } else {
        tracing::subscriber::set_global_default(subscriber_with(filter, writer))
    };
    if let Err(error) = result {
        eprintln!("the log subscriber was already set: {error}");
    }
}

/// A JSON-lines subscriber at `level`, writing to `writer` (for tests: capture the log).
pub fn subscriber<W>(level: LogLevel, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    subscriber_with(
        tracing_subscriber::EnvFilter::default().add_directive(level.filter().into()),
        writer,
    )
}

fn subscriber_with<W>(
    filter: tracing_subscriber::EnvFilter,
    writer: W,
) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .fmt_fields(JsonFields::new())
        .event_format(JsonLines)
        .with_env_filter(filter)
        .with_writer(writer)
        .finish()
}
