//! Flagger's flags (and klog's, which Flagger's `main` registers) that have no effect in
//! Fledge: accepted so that Flagger's manifests run unchanged, and named at start-up.

use serde::Serialize;

/// Flagger flags without an effect in Fledge; accepted, and reported at start-up when set.
/// Besides Flagger's own, the flags klog registers in Flagger's `main` (`klog.InitFlags`).
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct IgnoredFlaggerFlags {
    /// Flagger's worker count (Fledge's work is not per worker).
    #[arg(long, hide = true)]
    pub threadiness: Option<String>,
    /// Flagger's resync period (Fledge reacts to watch events).
    #[arg(long, hide = true)]
    pub control_loop_interval: Option<String>,
    /// Flagger's log encoding (Fledge always writes JSON lines).
    #[arg(long, hide = true)]
    pub zap_encoding: Option<String>,
    /// Flagger's global logger switch.
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    pub zap_replace_globals: Option<String>,
    /// klog's verbosity (Fledge logs by `-log-level`).
    #[arg(long = "v", hide = true)]
    pub klog_v: Option<String>,
    /// klog's per-file verbosity.
    #[arg(long = "vmodule", hide = true)]
    pub klog_vmodule: Option<String>,
    /// klog's log directory (Fledge writes to standard output).
    #[arg(long = "log_dir", hide = true)]
    pub klog_log_dir: Option<String>,
    /// klog's log file.
    #[arg(long = "log_file", hide = true)]
    pub klog_log_file: Option<String>,
    /// klog's log file size limit.
    #[arg(long = "log_file_max_size", hide = true)]
    pub klog_log_file_max_size: Option<String>,
    /// klog's switch to log to standard error.
    #[arg(long = "logtostderr", hide = true, num_args = 0..=1, default_missing_value = "true")]
    pub klog_logtostderr: Option<String>,
    /// klog's switch to log to standard error besides files.
    #[arg(long = "alsologtostderr", hide = true, num_args = 0..=1, default_missing_value = "true")]
    pub klog_alsologtostderr: Option<String>,
    /// klog's level written to standard error.
    #[arg(long = "stderrthreshold", hide = true)]
    pub klog_stderrthreshold: Option<String>,
    /// klog's header switch.
    #[arg(long = "skip_headers", hide = true, num_args = 0..=1, default_missing_value = "true")]
    pub klog_skip_headers: Option<String>,
    /// klog's header switch for log files.
    #[arg(long = "skip_log_headers", hide = true, num_args = 0..=1, default_missing_value = "true")]
    pub klog_skip_log_headers: Option<String>,
    /// klog's source-directory switch.
    #[arg(long = "add_dir_header", hide = true, num_args = 0..=1, default_missing_value = "true")]
    pub klog_add_dir_header: Option<String>,
    /// klog's one-file-per-level switch.
    #[arg(long = "one_output", hide = true, num_args = 0..=1, default_missing_value = "true")]
    pub klog_one_output: Option<String>,
    /// klog's stack-trace location.
    #[arg(long = "log_backtrace_at", hide = true)]
    pub klog_log_backtrace_at: Option<String>,
    /// klog's standard-error threshold compatibility switch.
    #[arg(long = "legacy_stderr_threshold_behavior", hide = true, num_args = 0..=1,
          default_missing_value = "true")]
    pub klog_legacy_stderr_threshold_behavior: Option<String>,
}

impl IgnoredFlaggerFlags {
    /// The flags that were set, as `-name=value`.
    pub fn set(&self) -> Vec<String> {
        [
            ("threadiness", &self.threadiness),
            ("control-loop-interval", &self.control_loop_interval),
            ("zap-encoding", &self.zap_encoding),
            ("zap-replace-globals", &self.zap_replace_globals),
            ("v", &self.klog_v),
            ("vmodule", &self.klog_vmodule),
            ("log_dir", &self.klog_log_dir),
            ("log_file", &self.klog_log_file),
            ("log_file_max_size", &self.klog_log_file_max_size),
            ("logtostderr", &self.klog_logtostderr),
            ("alsologtostderr", &self.klog_alsologtostderr),
            ("stderrthreshold", &self.klog_stderrthreshold),
            ("skip_headers", &self.klog_skip_headers),
            ("skip_log_headers", &self.klog_skip_log_headers),
            ("add_dir_header", &self.klog_add_dir_header),
            ("one_output", &self.klog_one_output),
            ("log_backtrace_at", &self.klog_log_backtrace_at),
            (
                "legacy_stderr_threshold_behavior",
                &self.klog_legacy_stderr_threshold_behavior,
            ),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_ref().map(|v| format!("-{name}={v}")))
        .collect()
    }
}
