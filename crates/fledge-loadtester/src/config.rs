//! The loadtester's flags: Flagger's `cmd/loadtester/main.go` ones (one dash or two, as Go
//! parses them) and two of Fledge's.
//!
//! | flag | default | meaning |
//! |---|---|---|
//! | `-port` | `8080` | port of the API (Flagger's binary defaults to 9090, its manifests pass 8080) |
//! | `-timeout` | `1h` | how long a task may run |
//! | `-namespace-regexp` | none | only canaries in namespaces matching it may call (403 otherwise) |
//! | `-log-level` | `debug` | `debug`, `info`, `warning` (`warn`), `error` |
//! | `-zap-encoding` | `json` | `json` or `console` |
//! | `-zap-replace-globals` | `false` | accepted for Flagger's manifests; no effect |
//! | `-log-cmd-output` | `false` | Fledge: log every `cmd` task's output, as `logCmdOutput: "true"` does per hook |
//! | `-max-body-bytes` | `1048576` | Fledge: larger request bodies get 413 |

use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use fledge_api::GoDuration;
use regex::Regex;

use crate::goflag::{self, FlagError, FlagSpec, parse_go_bool};

/// How much the loadtester logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    /// Everything.
    Debug,
    /// Tasks, gates, rollbacks.
    Info,
    /// Problems.
    Warning,
    /// Failures only.
    Error,
}

impl LogLevel {
    /// The `tracing` filter of this level.
    pub fn filter(self) -> tracing::level_filters::LevelFilter {
        use tracing::level_filters::LevelFilter;
        match self {
            Self::Debug => LevelFilter::DEBUG,
            Self::Info => LevelFilter::INFO,
            Self::Warning => LevelFilter::WARN,
            Self::Error => LevelFilter::ERROR,
        }
    }
}

/// The flags [`Config::from_args`] accepts.
const FLAGS: [FlagSpec; 8] = [
    FlagSpec::value("port"),
    FlagSpec::value("timeout"),
    FlagSpec::value("namespace-regexp"),
    FlagSpec::value("log-level"),
    FlagSpec::value("zap-encoding"),
    FlagSpec::switch("zap-replace-globals"),
    FlagSpec::switch("log-cmd-output"),
    FlagSpec::value("max-body-bytes"),
];

/// The usage text of the binary.
pub const USAGE: &str = "\
Usage: fledge-loadtester [flags]
       fledge-loadtester hey [hey flags] <url>

Flagger's loadtester API with a built-in hey. Flags take one dash or two (-port=8080, --port 8080):
  -port string               port to listen on (default \"8080\")
  -timeout duration          load test exec timeout (default 1h0m0s)
  -namespace-regexp string   restrict access to canaries in matching namespaces
  -log-level string          debug, info, warning, error (default \"debug\")
  -zap-encoding string       json or console (default \"json\")
  -zap-replace-globals       accepted for compatibility; no effect
  -log-cmd-output            log the output of every cmd task (as logCmdOutput: \"true\")
  -max-body-bytes int        largest request body accepted (default 1048576)
";

/// A flag with a bad value: which and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The flags themselves.
    #[error("{0}")]
    Flags(#[from] FlagError),
    /// A value.
    #[error("invalid value {value:?} for flag -{flag}: {reason}")]
    Value {
        /// The flag.
        flag: &'static str,
        /// What was given.
        value: String,
        /// What is expected.
        reason: String,
    },
    /// Arguments after the flags.
    #[error("unexpected argument {0:?}: the loadtester takes only flags (or `hey ...`)")]
    Positional(String),
}

/// The loadtester's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the API listens (`0.0.0.0:<-port>`).
    pub address: SocketAddr,
    /// `-timeout`.
    pub timeout: Duration,
    /// `-namespace-regexp`.
    pub namespace_regexp: Option<Regex>,
    /// `-log-level`.
    pub log_level: LogLevel,
    /// `-zap-encoding=console`.
    pub console_logs: bool,
    /// `-log-cmd-output`.
    pub log_cmd_output: bool,
    /// `-max-body-bytes`.
    pub max_body_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            address: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 8080)),
            timeout: Duration::from_secs(3600),
            namespace_regexp: None,
            log_level: LogLevel::Debug,
            console_logs: false,
            log_cmd_output: false,
            max_body_bytes: 1 << 20,
        }
    }
}

impl Config {
    /// Reads the flags (without the program name).
    pub fn from_args<S: AsRef<str>>(args: &[S]) -> Result<Self, ConfigError> {
        let flags = goflag::parse(&FLAGS, args)?;
        if let Some(extra) = flags.positional.first() {
            return Err(ConfigError::Positional(extra.clone()));
        }
        let mut config = Self::default();
        let bad = |flag: &'static str, value: &str, reason: &str| ConfigError::Value {
            flag,
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(port) = flags.last("port") {
            let port = port
                .parse::<u16>()
                .map_err(|_| bad("port", port, "expected a port number (8080)"))?;
            config.address.set_port(port);
        }
        if let Some(timeout) = flags.last("timeout") {
            config.timeout = GoDuration::from_str(timeout)
                .map_err(|error| bad("timeout", timeout, &format!("{error} (write 1h, 30m)")))?
                .as_duration();
            if config.timeout.is_zero() {
                return Err(bad(
                    "timeout",
                    timeout,
                    "a task needs some time; write 1h, 30m",
                ));
            }
        }
        if let Some(pattern) = flags.last("namespace-regexp").filter(|p| !p.is_empty()) {
            config.namespace_regexp = Some(Regex::new(pattern).map_err(|error| {
                bad(
                    "namespace-regexp",
                    pattern,
                    &format!("not a regular expression: {error}"),
                )
            })?);
        }
        if let Some(level) = flags.last("log-level") {
            config.log_level = match level {
                "debug" => LogLevel::Debug,
                "info" => LogLevel::Info,
                "warning" | "warn" => LogLevel::Warning,
                "error" => LogLevel::Error,
                _ => return Err(bad("log-level", level, "use debug, info, warning or error")),
            };
        }
        if let Some(encoding) = flags.last("zap-encoding") {
            config.console_logs = match encoding {
                "json" => false,
                "console" => true,
                _ => return Err(bad("zap-encoding", encoding, "use json or console")),
            };
        }
        config.log_cmd_output = flags
            .last("log-cmd-output")
            .and_then(parse_go_bool)
            .unwrap_or(false);
        if let Some(limit) = flags.last("max-body-bytes") {
            config.max_body_bytes = limit
                .parse::<usize>()
                .ok()
                .filter(|limit| *limit > 0)
                .ok_or_else(|| bad("max-body-bytes", limit, "expected a number of bytes > 0"))?;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flaggers_manifest_flags_are_read() {
        let config =
            Config::from_args(&["-port=8080", "-log-level=info", "-timeout=1h"]).expect("valid");
        assert_eq!(config.address.port(), 8080);
        assert_eq!(config.log_level, LogLevel::Info);
        assert_eq!(config.timeout, Duration::from_secs(3600));
        let config = Config::from_args(&[
            "--port",
            "9090",
            "--namespace-regexp",
            "^(test|prod)$",
            "-zap-encoding",
            "console",
            "-zap-replace-globals",
            "-log-cmd-output",
            "-max-body-bytes=1024",
            "-timeout",
            "90s",
        ])
        .expect("valid");
        assert_eq!(config.address.port(), 9090);
        assert!(config.namespace_regexp.is_some_and(|r| r.is_match("test")));
        assert!(config.console_logs && config.log_cmd_output);
        assert_eq!(config.max_body_bytes, 1024);
        assert_eq!(config.timeout, Duration::from_secs(90));
    }

    #[test]
    fn defaults_are_port_8080_an_hour_and_debug_logs() {
        let config = Config::from_args::<&str>(&[]).expect("valid");
        assert_eq!(config.address, SocketAddr::from(([0, 0, 0, 0], 8080)));
        assert_eq!(config.timeout, Duration::from_secs(3600));
        assert_eq!(config.log_level, LogLevel::Debug);
        assert!(config.namespace_regexp.is_none());
    }

    #[test]
    fn bad_values_name_the_flag_and_the_fix() {
        for (args, message) in [
            (
                &["-port=http"][..],
                "invalid value \"http\" for flag -port: expected a port number (8080)",
            ),
            (
                &["-log-level=loud"][..],
                "invalid value \"loud\" for flag -log-level: use debug, info, warning or error",
            ),
            (
                &["-prot=1"][..],
                "flag provided but not defined: -prot (did you mean -port?)",
            ),
            (
                &["extra"][..],
                "unexpected argument \"extra\": the loadtester takes only flags (or `hey ...`)",
            ),
        ] {
            assert_eq!(
                Config::from_args(args).expect_err(message).to_string(),
                message
            );
        }
        let error = Config::from_args(&["-namespace-regexp=("]).expect_err("bad regexp");
        assert!(
            error.to_string().starts_with(
                "invalid value \"(\" for flag -namespace-regexp: not a regular expression"
            ),
            "{error}"
        );
        let error = Config::from_args(&["-timeout=soon"]).expect_err("bad timeout");
        assert!(error.to_string().contains("-timeout"), "{error}");
    }
}
