//! `type: concord`: starts a Concord process and waits for it, as Flagger's loadtester does.
//!
//! Metadata: `server` (Concord's URL), `org`, `project`, `repo`, `entrypoint`, `apiKeyPath` (a
//! file holding the API key, sent as `Authorization`), `endpoint` (passed to the process as
//! `arguments.endpoint`), optional `pollInterval` and `pollTimeout` in seconds (5 and 30) and
//! `arguments.<name>` entries passed through. The process is started with a multipart
//! `POST <server>/api/v1/process` and polled with `GET <server>/api/v1/process/<id>` until
//! its status is `FINISHED` (200) or `FAILED` (500), or `pollTimeout` passes (500).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::Deserialize;

use crate::payload::WebhookPayload;
use crate::server::text;

const BASE_PATH: &str = "/api/v1/process";
const ARGUMENT_PREFIX: &str = "arguments.";

/// A validated concord task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConcordTask {
    server: String,
    fields: Vec<(String, String)>,
    api_key_path: String,
    poll_interval: Duration,
    poll_timeout: Duration,
}

#[derive(Debug, Deserialize)]
struct Process {
    #[serde(rename = "instanceId", default)]
    instance_id: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    ok: bool,
}

impl ConcordTask {
    /// Reads the metadata; the error is Flagger's message for the first missing or bad field.
    pub fn from_metadata(metadata: &BTreeMap<String, String>) -> Result<Self, String> {
        let required = |name: &str| {
            metadata
                .get(name)
                .cloned()
                .ok_or_else(|| format!("`{name}` is required with type concord"))
        };
        let server = required("server")?;
        let parsed: http::Uri = server
            .parse()
            .map_err(|_| "failed to create base URL from metadata `concord_url`".to_owned())?;
        if parsed.scheme().is_none() || parsed.host().is_none() {
            return Err(format!(
                "`server` {server:?} is not a URL: write http(s)://concord.example.com"
            ));
        }
        let org = required("org")?;
        let project = required("project")?;
        let repo = required("repo")?;
        let entrypoint = required("entrypoint")?;
        let api_key_path = required("apiKeyPath")?;
        if !std::path::Path::new(&api_key_path).exists() {
            return Err(format!("`apiKeyPath` file doesn't exist {api_key_path}"));
        }
        let endpoint = required("endpoint")?;
        let seconds = |name: &str, default: u64| -> Result<Duration, String> {
            metadata
                .get(name)
                .map_or(Ok(Duration::from_secs(default)), |value| {
                    value
                        .parse::<u64>()
                        .map(Duration::from_secs)
                        .map_err(|_| format!("unable to convert `{name}` to int"))
                })
        };
        let poll_interval = seconds("pollInterval", 5)?.max(Duration::from_millis(100));
        let poll_timeout = seconds("pollTimeout", 30)?;
        let mut fields = vec![
            ("org".to_owned(), org),
            ("project".to_owned(), project),
            ("repo".to_owned(), repo),
            ("entryPoint".to_owned(), entrypoint),
            ("arguments.endpoint".to_owned(), endpoint),
        ];
        for (key, value) in metadata {
            if key == "arguments.endpoint" {
                return Err("You cannot override Endpoint through arguments. You must override Endpoint directly".to_owned());
            }
            if key.starts_with(ARGUMENT_PREFIX) {
                fields.push((key.clone(), value.clone()));
            }
        }
        Ok(Self {
            server: server.trim_end_matches('/').to_owned(),
            fields,
            api_key_path,
            poll_interval,
            poll_timeout,
        })
    }

    /// Starts the process and waits for its end.
    pub async fn run(&self, canary: &str) -> Result<(), String> {
        let api_key = std::fs::read_to_string(&self.api_key_path)
            .map_err(|error| format!("reading `apiKeyPath` {}: {error}", self.api_key_path))?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|error| format!("concord client: {error}"))?;
        let boundary = "fledge-loadtester-concord-boundary";
        let mut body = String::new();
        for (name, value) in &self.fields {
            let _ = write!(
                body,
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            );
        }
        let _ = write!(body, "--{boundary}--\r\n");
        let url = format!("{}{BASE_PATH}", self.server);
        tracing::info!(canary, "calling endpoint {url}");
        let started: Process = client
            .post(&url)
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .header(reqwest::header::AUTHORIZATION, api_key.trim_end())
            .body(body)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|error| format!("failed to start process: {error}"))?
            .json()
            .await
            .map_err(|error| format!("failed to start process: {error}"))?;
        tracing::info!(
            canary,
            "created process id [{}] OK status is {}",
            started.instance_id,
            started.ok
        );
        let deadline = tokio::time::Instant::now() + self.poll_timeout;
        let url = format!("{url}/{}", started.instance_id);
        loop {
            tokio::time::sleep(self.poll_interval).await;
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "concord process timed out, after {} seconds",
                    self.poll_timeout.as_secs()
                ));
            }
            tracing::info!(canary, "calling endpoint {url}");
            let process: Process = client
                .get(&url)
                .header(reqwest::header::AUTHORIZATION, api_key.trim_end())
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|error| format!("failed checking status: {error}"))?
                .json()
                .await
                .map_err(|error| format!("failed checking status: {error}"))?;
            tracing::info!(
                canary,
                "process id [{}] current status is {}",
                process.instance_id,
                process.status
            );
            match process.status.as_str() {
                "FINISHED" => return Ok(()),
                "FAILED" => {
                    return Err(format!(
                        "concord instanceID: {} failed",
                        started.instance_id
                    ));
                }
                _ => {}
            }
        }
    }
}

/// Answers a `type: concord` call: 200 when the process finished, 500 with the reason
/// otherwise (bad metadata included, as Flagger).
pub(crate) async fn run(timeout: Duration, payload: &WebhookPayload) -> Response<Full<Bytes>> {
    let canary = payload.canary();
    let task = match ConcordTask::from_metadata(&payload.metadata) {
        Ok(task) => task,
        Err(error) => {
            tracing::error!(canary = %payload.name, "concord task init error: {error}");
            return text(StatusCode::INTERNAL_SERVER_ERROR, &error);
        }
    };
    let result = tokio::time::timeout(timeout, task.run(&canary))
        .await
        .unwrap_or_else(|_| Err("context timedout".to_owned()));
    match result {
        Ok(()) => text(StatusCode::OK, ""),
        Err(error) => {
            tracing::error!(canary = %payload.name, "concord task error: {error}");
            text(StatusCode::INTERNAL_SERVER_ERROR, &error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn missing_fields_are_named_in_flaggers_words() {
        let key = tempfile::NamedTempFile::new().expect("temp file");
        let key_path = key.path().to_string_lossy().into_owned();
        let mut fields = vec![
            ("server", "http://concord.example.com"),
            ("org", "o"),
            ("project", "p"),
            ("repo", "r"),
            ("entrypoint", "e"),
            ("apiKeyPath", key_path.as_str()),
            ("endpoint", "http://podinfo-canary.test:9898/"),
        ];
        let task = ConcordTask::from_metadata(&metadata(&fields)).expect("complete");
        assert_eq!(task.poll_interval, Duration::from_secs(5));
        assert_eq!(task.poll_timeout, Duration::from_secs(30));
        fields.push(("arguments.endpoint", "x"));
        assert_eq!(
            ConcordTask::from_metadata(&metadata(&fields)),
            Err("You cannot override Endpoint through arguments. You must override Endpoint directly".to_owned())
        );
        fields.pop();
        fields.push(("pollInterval", "soon"));
        assert_eq!(
            ConcordTask::from_metadata(&metadata(&fields)),
            Err("unable to convert `pollInterval` to int".to_owned())
        );
        assert_eq!(
            ConcordTask::from_metadata(&metadata(&fields[1..])),
            Err("`server` is required with type concord".to_owned())
        );
        let mut missing_key = fields.clone();
        missing_key[5] = ("apiKeyPath", "/nonexistent/key");
        assert_eq!(
            ConcordTask::from_metadata(&metadata(&missing_key)),
            Err("`apiKeyPath` file doesn't exist /nonexistent/key".to_owned())
        );
    }
}
