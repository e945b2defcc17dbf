//! What a run measured, and hey's summary of it (the text hey prints at the end).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// hey keeps the latencies of at most this many requests for the distribution.
pub const MAX_KEPT_LATENCIES: usize = 1_000_000;

/// The percentiles hey prints.
const PERCENTILES: [usize; 7] = [10, 25, 50, 75, 90, 95, 99];

/// Average, fastest and slowest of one stage of the requests.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stage {
    sum: f64,
    min: f64,
    max: f64,
    count: u64,
}

impl Stage {
    fn record(&mut self, seconds: f64) {
        if self.count == 0 || seconds < self.min {
            self.min = seconds;
        }
        if seconds > self.max {
            self.max = seconds;
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn merge(&mut self, other: &Self) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 || other.min < self.min {
            self.min = other.min;
        }
        self.max = self.max.max(other.max);
        self.sum += other.sum;
        self.count += other.count;
    }

    /// The mean in seconds (NaN when nothing was recorded, as hey prints it).
    pub fn average(&self) -> f64 {
        self.sum / self.count as f64
    }
}

/// The timings of one answered request, in seconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    /// From the start of the request to the end of the response body.
    pub total: f64,
    /// DNS lookup and TCP connect (0 on a reused connection).
    pub dial: f64,
    /// DNS lookup alone.
    pub dns: f64,
    /// Writing the request until the response headers arrived.
    pub wait: f64,
    /// Reading the response body.
    pub read: f64,
}

/// Everything measured by one worker, or by all of them once merged.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Wall time of the whole run.
    pub total: Duration,
    /// Latencies of answered requests, in seconds (the first [`MAX_KEPT_LATENCIES`]).
    pub latencies: Vec<f64>,
    /// Requests answered (any status) or failed.
    pub results: u64,
    /// Answers per status code.
    pub status_codes: BTreeMap<u16, u64>,
    /// Failures per error message.
    pub errors: BTreeMap<String, u64>,
    /// Sum of the `Content-Length` of the answers.
    pub size_total: u64,
    /// Whole requests (the latency stage).
    pub request: Stage,
    /// DNS + dial.
    pub dial: Stage,
    /// DNS.
    pub dns: Stage,
    /// Response wait.
    pub wait: Stage,
    /// Response read.
    pub read: Stage,
    /// Answered requests (with a status code).
    pub answered: u64,
}

impl Report {
    /// Records one answered request.
    pub fn answer(&mut self, status: u16, content_length: u64, timings: Timings, keep: usize) {
        self.results += 1;
        self.answered += 1;
        *self.status_codes.entry(status).or_default() += 1;
        self.size_total += content_length;
        if self.latencies.len() < keep {
            self.latencies.push(timings.total);
        }
        self.request.record(timings.total);
        self.dial.record(timings.dial);
        self.dns.record(timings.dns);
        self.wait.record(timings.wait);
        self.read.record(timings.read);
    }

    /// Records one failed request.
    pub fn error(&mut self, message: String) {
        self.results += 1;
        *self.errors.entry(message).or_default() += 1;
    }

    /// Adds another worker's measurements.
    pub fn merge(&mut self, other: Self) {
        self.results += other.results;
        self.answered += other.answered;
        for (code, count) in other.status_codes {
            *self.status_codes.entry(code).or_default() += count;
        }
        for (error, count) in other.errors {
            *self.errors.entry(error).or_default() += count;
        }
        self.size_total += other.size_total;
        let room = MAX_KEPT_LATENCIES.saturating_sub(self.latencies.len());
        self.latencies
            .extend(other.latencies.into_iter().take(room));
        self.request.merge(&other.request);
        self.dial.merge(&other.dial);
        self.dns.merge(&other.dns);
        self.wait.merge(&other.wait);
        self.read.merge(&other.read);
    }

    /// Requests per second over the whole run, failures included (as hey counts).
    pub fn requests_per_second(&self) -> f64 {
        self.results as f64 / self.total.as_secs_f64()
    }

    /// Sorts the kept latencies (done once before reading percentiles).
    pub fn sort(&mut self) {
        self.latencies.sort_by(f64::total_cmp);
    }

    /// hey's percentiles (10, 25, 50, 75, 90, 95, 99) of the sorted latencies: the first
    /// latency at or past each rank, 0 where the run was too short to reach it.
    pub fn percentiles(&self) -> Vec<(usize, f64)> {
        let mut data = [0.0; PERCENTILES.len()];
        let mut next = 0;
        let count = self.latencies.len();
        for (i, latency) in self.latencies.iter().enumerate() {
            if next == PERCENTILES.len() {
                break;
            }
            if i * 100 / count >= PERCENTILES[next] {
                data[next] = *latency;
                next += 1;
            }
        }
        PERCENTILES
            .iter()
            .zip(data)
            .map(|(p, latency)| {
                if latency > 0.0 {
                    (*p, latency)
                } else {
                    (0, 0.0)
                }
            })
            .collect()
    }

    /// hey's summary, the same text hey prints (the latencies must be sorted).
    pub fn summary(&self) -> String {
        let n = |v: f64| format!("{v:4.4}");
        let (fastest, slowest) = match (self.latencies.first(), self.latencies.last()) {
            (Some(first), Some(last)) => (*first, *last),
            _ => (0.0, 0.0),
        };
        let mut out = String::new();
        let _ = write!(
            out,
            "\nSummary:\n  Total:\t{} secs\n  Slowest:\t{} secs\n  Fastest:\t{} secs\n  \
             Average:\t{} secs\n  Requests/sec:\t{}\n  ",
            n(self.total.as_secs_f64()),
            n(slowest),
            n(fastest),
            n(self.request.average()),
            n(self.requests_per_second()),
        );
        if self.size_total > 0 {
            let _ = write!(
                out,
                "\n  Total data:\t{} bytes\n  Size/request:\t{} bytes",
                self.size_total,
                self.size_total / self.latencies.len().max(1) as u64
            );
        }
        out.push_str("\n\nResponse time histogram:\n");
        if !self.latencies.is_empty() {
            out.push_str(&self.histogram(fastest, slowest));
        }
        out.push_str("\n\nLatency distribution:");
        if !self.latencies.is_empty() {
            for (percent, latency) in self.percentiles() {
                let _ = write!(out, "\n  {percent}% in {} secs", n(latency));
            }
        }
        out.push_str("\n\nDetails (average, fastest, slowest):");
        for (name, stage) in [
            ("DNS+dialup", &self.dial),
            ("DNS-lookup", &self.dns),
            ("req write", &Stage::default()),
            ("resp wait", &self.wait),
            ("resp read", &self.read),
        ] {
            let average = if self.answered == 0 {
                f64::NAN
            } else {
                stage.sum / self.answered as f64
            };
            let _ = write!(
                out,
                "\n  {name}:\t{} secs, {} secs, {} secs",
                n(average),
                n(stage.min),
                n(stage.max)
            );
        }
        out.push_str("\n\nStatus code distribution:");
        for (code, count) in &self.status_codes {
            let _ = write!(out, "\n  [{code}]\t{count} responses");
        }
        out.push_str("\n\n");
        if !self.errors.is_empty() {
            out.push_str("Error distribution:");
            for (error, count) in &self.errors {
                let _ = write!(out, "\n  [{count}]\t{error}");
            }
        }
        out.push_str("\n\n");
        out
    }

    fn histogram(&self, fastest: f64, slowest: f64) -> String {
        const BUCKETS: usize = 10;
        let step = (slowest - fastest) / BUCKETS as f64;
        let mut marks = [0.0; BUCKETS + 1];
        for (i, mark) in marks.iter_mut().enumerate().take(BUCKETS) {
            *mark = fastest + step * i as f64;
        }
        marks[BUCKETS] = slowest;
        let mut counts = [0_usize; BUCKETS + 1];
        let mut bucket = 0;
        let mut i = 0;
        while i < self.latencies.len() {
            if self.latencies[i] <= marks[bucket] {
                counts[bucket] += 1;
                i += 1;
            } else if bucket < BUCKETS {
                bucket += 1;
            } else {
                // NaN-free latencies never get here; stop rather than spin.
                break;
            }
        }
        let max = counts.iter().copied().max().unwrap_or(0);
        let mut out = String::new();
        for (mark, count) in marks.iter().zip(counts) {
            let bar = (count * 40 + max / 2).checked_div(max).unwrap_or(0);
            let _ = writeln!(out, "  {mark:4.3} [{count}]\t|{}", "■".repeat(bar));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(latencies_ms: &[u64]) -> Report {
        let mut report = Report {
            total: Duration::from_secs(2),
            ..Report::default()
        };
        for ms in latencies_ms {
            let seconds = *ms as f64 / 1000.0;
            report.answer(
                200,
                10,
                Timings {
                    total: seconds,
                    wait: seconds,
                    ..Timings::default()
                },
                MAX_KEPT_LATENCIES,
            );
        }
        report.sort();
        report
    }

    #[test]
    fn percentiles_are_heys_first_latency_at_or_past_each_rank() {
        let report = report(&(1..=100).collect::<Vec<_>>());
        assert_eq!(
            report.percentiles(),
            [
                (10, 0.011),
                (25, 0.026),
                (50, 0.051),
                (75, 0.076),
                (90, 0.091),
                (95, 0.096),
                (99, 0.1)
            ]
        );
        // Too few requests to reach the 99th: hey prints "0% in 0.0000 secs".
        let short = report_with(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(short.percentiles()[6], (0, 0.0));
    }

    fn report_with(ms: &[u64]) -> Report {
        report(ms)
    }

    #[test]
    fn the_summary_reads_like_heys() {
        let mut report = report(&[10, 20, 30, 40]);
        report.error("Get \"http://h/\": connection refused".to_owned());
        let summary = report.summary();
        assert!(summary.starts_with("\nSummary:\n  Total:\t2.0000 secs\n  Slowest:\t0.0400 secs\n  Fastest:\t0.0100 secs\n  Average:\t0.0250 secs\n  Requests/sec:\t2.5000\n  \n  Total data:\t40 bytes\n  Size/request:\t10 bytes\n\nResponse time histogram:\n  0.010 [1]\t|"), "{summary}");
        assert!(summary.contains("\n\nLatency distribution:\n  10% in 0.0200 secs\n  25% in 0.0300 secs\n  50% in 0.0400 secs\n  0% in 0.0000 secs\n  0% in 0.0000 secs"), "{summary}");
        assert!(
            summary.contains("  resp wait:\t0.0250 secs, 0.0100 secs, 0.0400 secs\n"),
            "{summary}"
        );
        assert!(summary.ends_with("\n\nStatus code distribution:\n  [200]\t4 responses\n\nError distribution:\n  [1]\tGet \"http://h/\": connection refused\n\n"), "{summary}");
    }

    #[test]
    fn a_run_without_answers_prints_nan_averages_like_hey() {
        let mut report = Report {
            total: Duration::from_millis(500),
            ..Report::default()
        };
        report.error("refused".to_owned());
        let summary = report.summary();
        assert!(summary.contains("Average:\t NaN secs"), "{summary}");
        assert!(
            summary.contains("Response time histogram:\n\n\nLatency distribution:\n\nDetails"),
            "{summary}"
        );
    }

    #[test]
    fn merging_workers_adds_counts_and_keeps_extremes() {
        let mut all = report(&[5, 50]);
        all.merge(report(&[1, 500]));
        all.sort();
        assert_eq!(all.results, 4);
        assert_eq!(all.status_codes[&200], 4);
        assert_eq!(all.latencies.first(), Some(&0.001));
        assert_eq!(all.latencies.last(), Some(&0.5));
        assert!((all.wait.max - 0.5).abs() < 1e-12 && (all.wait.min - 0.001).abs() < 1e-12);
    }
}
