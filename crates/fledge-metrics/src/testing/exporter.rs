//! A `/metrics` endpoint whose counters grow by a known amount on every scrape.

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

/// One exposed series: a counter that grows by `per_scrape` on every scrape.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    name: String,
    labels: Vec<(String, String)>,
    per_scrape: f64,
}

impl Series {
    /// A counter `name{labels}` growing by `per_scrape` per scrape.
    pub fn counter(name: &str, labels: &[(&str, &str)], per_scrape: f64) -> Self {
        Self {
            name: name.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            per_scrape,
        }
    }

    /// A histogram: `{name}_bucket` per `(le, count in that bucket alone)`, plus `+Inf`,
    /// `{name}_count` and `{name}_sum` (growing by `sum_per_scrape`).
    pub fn histogram(
        name: &str,
        labels: &[(&str, &str)],
        buckets: &[(&str, f64)],
        sum_per_scrape: f64,
    ) -> Vec<Self> {
        let mut series = Vec::with_capacity(buckets.len() + 3);
        let mut cumulative = 0.0;
        for (le, count) in buckets {
            cumulative += count;
            series.push(Self::bucket(name, labels, le, cumulative));
        }
        series.push(Self::bucket(name, labels, "+Inf", cumulative));
        series.push(Self::counter(&format!("{name}_count"), labels, cumulative));
        series.push(Self::counter(
            &format!("{name}_sum"),
            labels,
            sum_per_scrape,
        ));
        series
    }

    fn bucket(name: &str, labels: &[(&str, &str)], le: &str, cumulative: f64) -> Self {
        let mut with_le = labels.to_vec();
        with_le.push(("le", le));
        Self::counter(&format!("{name}_bucket"), &with_le, cumulative)
    }

    fn write(&self, scrape: u64, out: &mut String) {
        out.push_str(&self.name);
        if !self.labels.is_empty() {
            out.push('{');
            for (i, (key, value)) in self.labels.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let value = value.replace('\\', r"\\").replace('"', "\\\"");
                let _ = write!(out, "{key}=\"{value}\"");
            }
            out.push('}');
        }
        let _ = writeln!(out, " {}", self.per_scrape * scrape as f64);
    }
}

/// Serves the text exposition of a fixed set of [`Series`] on 127.0.0.1 until dropped.
pub struct SeriesExporter {
    address: SocketAddr,
    scrapes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SeriesExporter {
    /// Starts serving on an ephemeral port.
    ///
    /// # Errors
    /// When no port can be bound.
    pub fn start(series: Vec<Series>) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let scrapes = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut series = series;
        // The text format wants each metric's lines together.
        series.sort_by(|a, b| a.name.cmp(&b.name));
        let thread = {
            let (scrapes, stop) = (Arc::clone(&scrapes), Arc::clone(&stop));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        let _ = serve(stream, &series, &scrapes);
                    }
                }
            })
        };
        Ok(Self {
            address,
            scrapes,
            stop,
            thread: Some(thread),
        })
    }

    /// `127.0.0.1:PORT`, the scrape target.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// How many times `/metrics` was served.
    pub fn scrapes(&self) -> u64 {
        self.scrapes.load(Ordering::SeqCst)
    }
}

fn serve(stream: TcpStream, series: &[Series], scrapes: &AtomicU64) -> io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let mut stream = reader.into_inner();
    let (status, body) = if request_line.starts_with("GET /metrics") {
        let scrape = scrapes.fetch_add(1, Ordering::SeqCst) + 1;
        let mut body = String::new();
        for one in series {
            one.write(scrape, &mut body);
        }
        ("200 OK", body)
    } else {
        ("404 Not Found", String::from("not found\n"))
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

impl Drop for SeriesExporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.address);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
