//! JSON log lines shaped like Flagger's (zap's): `level`, `ts`, `msg`, then the fields of
//! the enclosing spans (the canary's `name` and `namespace`) and of the event, so that
//! `kubectl logs deploy/fledge-operator | jq .msg` reads like Flagger's logs.

use std::fmt::Write as _;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields, MakeWriter};
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
        ctx: &FmtContext<'_, S, JsonFields>,
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
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let Some(fields) = extensions.get::<FormattedFields<JsonFields>>() else {
                    continue;
                };
                if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(fields.as_str()) {
                    line.extend(fields);
                }
            }
        }
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

/// A subscriber writing [`JsonLines`] at `level` to `writer`. `RUST_LOG`, when set, refines
/// the level per module (`RUST_LOG=kube=debug`).
pub fn subscriber<W>(level: LogLevel, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::builder()
        .with_default_directive(level.filter().into())
        .from_env_lossy();
    tracing_subscriber::fmt()
        .fmt_fields(JsonFields::new())
        .event_format(JsonLines)
        .with_env_filter(filter)
        .with_writer(writer)
        .finish()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer that keeps everything written to it.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut bytes) = self.0.lock() {
                bytes.extend_from_slice(buf);
            }
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Self;

        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    fn lines(captured: &Captured) -> Vec<Value> {
        let bytes = captured.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    #[test]
    fn an_engine_message_is_the_msg_with_the_canary_as_fields() {
        let captured = Captured::default();
        tracing::subscriber::with_default(subscriber(LogLevel::Info, captured.clone()), || {
            let span = tracing::info_span!("reconcile", name = "podinfo", namespace = "test");
            let _entered = span.enter();
            tracing::info!("Advance podinfo.test canary weight 10");
            tracing::warn!(
                weight = 20,
                "Halt podinfo.test advancement success rate 61.39% < 99%"
            );
            tracing::debug!("not shown at info");
        });
        let lines = lines(&captured);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["msg"], "Advance podinfo.test canary weight 10");
        assert_eq!(lines[0]["level"], "info");
        assert_eq!(
            (&lines[0]["name"], &lines[0]["namespace"]),
            (&Value::from("podinfo"), &Value::from("test"))
        );
        assert!(lines[0]["ts"].as_str().is_some_and(|ts| ts.ends_with('Z')));
        assert_eq!(lines[1]["level"], "warn");
        assert_eq!(lines[1]["weight"], 20);
        assert_eq!(
            lines[1]["msg"],
            "Halt podinfo.test advancement success rate 61.39% < 99%"
        );
    }

    #[test]
    fn the_level_filters_lines() {
        let captured = Captured::default();
        tracing::subscriber::with_default(subscriber(LogLevel::Error, captured.clone()), || {
            tracing::warn!("quiet");
            tracing::error!(error = %"boom", "Canary failed!");
        });
        let lines = lines(&captured);
        assert_eq!(lines.len(), 1);
        assert_eq!(
            (&lines[0]["msg"], &lines[0]["error"]),
            (&Value::from("Canary failed!"), &Value::from("boom"))
        );
    }
}
