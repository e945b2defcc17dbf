//! `hey`'s command line: the flags of rakyll/hey 0.1.4 (the version Debian ships and Flagger's
//! image carries), their defaults and their checks, turned into one request template.

use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use fledge_api::GoDuration;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri};

use crate::goflag::{self, FlagError, FlagSpec};

/// hey's User-Agent, appended to any the user sets.
pub const HEY_USER_AGENT: &str = "hey/0.0.1";

/// The usage line printed with every command-line error.
pub const USAGE: &str = "Usage: hey [options...] <url>";

/// Every flag hey 0.1.4 defines. The built-in generator refuses the few it does not
/// implement with a clear error (see [`HeyOptions::parse`]).
const FLAGS: [FlagSpec; 21] = [
    FlagSpec::value("m"),
    FlagSpec::value("h"),
    FlagSpec::value("H"),
    FlagSpec::value("d"),
    FlagSpec::value("D"),
    FlagSpec::value("A"),
    FlagSpec::value("T"),
    FlagSpec::value("a"),
    FlagSpec::value("host"),
    FlagSpec::value("U"),
    FlagSpec::value("o"),
    FlagSpec::value("c"),
    FlagSpec::value("n"),
    FlagSpec::value("q"),
    FlagSpec::value("t"),
    FlagSpec::value("z"),
    FlagSpec::switch("h2"),
    FlagSpec::value("cpus"),
    FlagSpec::switch("disable-compression"),
    FlagSpec::switch("disable-keepalive"),
    FlagSpec::switch("disable-redirects"),
];

/// Flags that hey accepts and the built-in generator does not implement.
const UNSUPPORTED: [(&str, &str); 3] = [("h2", "HTTP/2"), ("o", "CSV output"), ("x", "proxies")];

/// A hey command line the built-in generator cannot run, with what to change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("hey: {0}\n{USAGE}")]
pub struct HeyError(pub String);

impl From<FlagError> for HeyError {
    fn from(error: FlagError) -> Self {
        match error {
            FlagError::Help => Self(
                "flags: -n -c -q -z -m -H -t -A -d -D -T -U -a -host \
                 -disable-compression -disable-keepalive -disable-redirects -cpus"
                    .to_owned(),
            ),
            other => Self(other.to_string()),
        }
    }
}

/// A parsed hey command: what to send, how often and how hard.
#[derive(Clone, Debug)]
pub struct HeyOptions {
    /// The URL as written (for error messages, as Go prints them).
    pub url: String,
    /// Host and port to connect to.
    pub authority: (String, u16),
    /// The request target (path and query).
    pub path_and_query: String,
    /// `-m`, upper-cased.
    pub method: Method,
    /// Every header sent, `Host` included.
    pub headers: HeaderMap,
    /// `-d` or the contents of `-D`.
    pub body: Bytes,
    /// `-n`; `None` when `-z` is set (hey ignores `-n` then).
    pub requests: Option<u64>,
    /// `-c`: the number of workers.
    pub concurrency: usize,
    /// `-q`: requests per second *per worker*; 0 means no limit.
    pub qps: f64,
    /// `-t`: timeout of each request; `None` for `-t 0`.
    pub timeout: Option<Duration>,
    /// `-z`: how long to send requests.
    pub duration: Option<Duration>,
    /// `-disable-keepalive`: a new connection per request (`Connection: close`).
    pub disable_keepalive: bool,
}

impl HeyOptions {
    /// Parses hey's arguments (without the leading `hey`).
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Self, HeyError> {
        refuse_unsupported(args)?;
        let flags = goflag::parse(&FLAGS, args)?;
        let number = |name: &str, default: i64| -> Result<i64, HeyError> {
            flags.last(name).map_or(Ok(default), |value| {
                value.parse::<i64>().map_err(|_| {
                    HeyError(format!(
                        "invalid value {value:?} for flag -{name}: expected a whole number"
                    ))
                })
            })
        };
        let concurrency = number("c", 50)?;
        let requests = number("n", 200)?;
        let timeout_seconds = number("t", 20)?;
        let qps = match flags.last("q") {
            None => 0.0,
            Some(value) => value.parse::<f64>().map_err(|_| {
                HeyError(format!(
                    "invalid value {value:?} for flag -q: expected requests per second per worker"
                ))
            })?,
        };
        let duration = match flags.last("z") {
            None => None,
            Some(value) => Some(
                GoDuration::from_str(value)
                    .map_err(|error| {
                        HeyError(format!(
                            "invalid value {value:?} for flag -z: {error} (write 10s, 1m30s)"
                        ))
                    })?
                    .as_duration(),
            )
            .filter(|d| !d.is_zero()),
        };
        if let Some(cpus) = flags.last("cpus") {
            cpus.parse::<u32>().map_err(|_| {
                HeyError(format!(
                    "invalid value {cpus:?} for flag -cpus: expected a number"
                ))
            })?;
        }
        let requests = if duration.is_some() {
            if concurrency <= 0 {
                return Err(HeyError("-c cannot be smaller than 1.".to_owned()));
            }
            None
        } else {
            if requests <= 0 || concurrency <= 0 {
                return Err(HeyError("-n and -c cannot be smaller than 1.".to_owned()));
            }
            if requests < concurrency {
                return Err(HeyError("-n cannot be less than -c.".to_owned()));
            }
            Some(requests as u64)
        };
        let Some(url) = flags.positional.first() else {
            return Err(HeyError("the URL to load is missing".to_owned()));
        };
        if flags.last("h").is_some() {
            return Err(HeyError(
                "Flag '-h' is deprecated, please use '-H' instead.".to_owned(),
            ));
        }
        let (authority, path_and_query, host) = target(url)?;
        let method = Method::from_bytes(
            flags
                .last("m")
                .unwrap_or("GET")
                .to_ascii_uppercase()
                .as_bytes(),
        )
        .map_err(|_| HeyError("invalid value for flag -m: expected GET, POST, ...".to_owned()))?;

        let mut headers = request_headers(&flags, &method, host)?;
        let mut body = Bytes::from(flags.last("d").unwrap_or_default().to_owned());
        if let Some(path) = flags.last("D").filter(|p| !p.is_empty()) {
            body = std::fs::read(path)
                .map_err(|error| HeyError(format!("-D {path}: {error}")))?
                .into();
        }
        if !body.is_empty() || matches!(method, Method::POST | Method::PUT | Method::PATCH) {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        }

        Ok(Self {
            url: url.clone(),
            authority,
            path_and_query,
            method,
            headers,
            body,
            requests,
            concurrency: usize::try_from(concurrency).unwrap_or(usize::MAX),
            qps: qps.max(0.0),
            timeout: (timeout_seconds > 0).then(|| Duration::from_secs(timeout_seconds as u64)),
            duration,
            disable_keepalive: flags.switch("disable-keepalive"),
        })
    }

    /// How many requests each worker sends: hey gives every worker `n / c` requests, so
    /// `-n 10 -c 3` sends 9.
    pub fn requests_per_worker(&self) -> Option<u64> {
        self.requests.map(|n| n / self.concurrency as u64)
    }
}

/// The headers of every request: hey's defaults (`Content-Type: text/html`, its User-Agent,
/// `Accept-Encoding: gzip`) and the flags' (`-H`, `-A`, `-a`, `-U`, `-host`,
/// `-disable-keepalive`, `-disable-compression`).
fn request_headers(
    flags: &goflag::ParsedFlags,
    method: &Method,
    host: String,
) -> Result<HeaderMap, HeyError> {
    let mut headers = HeaderMap::new();
    set(
        &mut headers,
        header::CONTENT_TYPE,
        flags.last("T").unwrap_or("text/html"),
        "-T",
    )?;
    for line in flags.all("H") {
        let (name, value) = parse_header(line)?;
        headers.insert(name, value);
    }
    if let Some(accept) = flags.last("A").filter(|a| !a.is_empty()) {
        set(&mut headers, header::ACCEPT, accept, "-A")?;
    }
    if let Some(auth) = flags.last("a").filter(|a| !a.is_empty()) {
        let Some((user, password)) = auth
            .split_once(':')
            .filter(|(user, password)| !user.is_empty() && password.len() > 1)
            .filter(|(_, password)| !password.starts_with(char::is_whitespace))
        else {
            return Err(HeyError(format!(
                "could not parse the provided input; input = {auth} (-a wants user:password)"
            )));
        };
        let token = base64(format!("{user}:{password}").as_bytes());
        set(
            &mut headers,
            header::AUTHORIZATION,
            &format!("Basic {token}"),
            "-a",
        )?;
    }
    let user_agent = match (
        flags.last("U").filter(|u| !u.is_empty()),
        headers.get(header::USER_AGENT),
    ) {
        (Some(agent), _) => format!("{agent} {HEY_USER_AGENT}"),
        (None, Some(set)) => format!("{} {HEY_USER_AGENT}", set.to_str().unwrap_or_default()),
        (None, None) => HEY_USER_AGENT.to_owned(),
    };
    set(&mut headers, header::USER_AGENT, &user_agent, "-U")?;
    let host = flags
        .last("host")
        .filter(|h| !h.is_empty())
        .map_or(host, str::to_owned);
    set(&mut headers, header::HOST, &host, "-host")?;
    if flags.switch("disable-keepalive") {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if !flags.switch("disable-compression")
        && *method != Method::HEAD
        && !headers.contains_key(header::ACCEPT_ENCODING)
        && !headers.contains_key(header::RANGE)
    {
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    }

    Ok(headers)
}

/// Refuses the flags hey has and the built-in generator does not implement.
fn refuse_unsupported<S: AsRef<str>>(args: &[S]) -> Result<(), HeyError> {
    if let Some(unsupported) = args.iter().find_map(|arg| {
        let name = arg.as_ref().trim_start_matches('-');
        let name = name.split_once('=').map_or(name, |(name, _)| name);
        UNSUPPORTED
            .iter()
            .find(|(flag, _)| arg.as_ref().starts_with('-') && *flag == name)
    }) {
        return Err(HeyError(format!(
            "-{} ({}) is not supported by the built-in hey; drop the flag, or install hey \
                 in the image and call it through `sh -c` (e.g. `cmd: \"exec hey ...\"`)",
            unsupported.0, unsupported.1
        )));
    }
    Ok(())
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: &str, flag: &str) -> Result<(), HeyError> {
    let value = HeaderValue::from_str(value)
        .map_err(|_| HeyError(format!("{flag} {value:?}: not a valid HTTP header value")))?;
    headers.insert(name, value);
    Ok(())
}

/// hey's `-H` syntax: `Name: value` (`^([\w-]+):\s*(.+)`).
fn parse_header(line: &str) -> Result<(HeaderName, HeaderValue), HeyError> {
    let invalid = || {
        HeyError(format!(
            "could not parse the provided input; input = {line} (-H wants \"Name: value\")"
        ))
    };
    let (name, value) = line.split_once(':').ok_or_else(invalid)?;
    let value = value.trim_start();
    if name.is_empty()
        || value.is_empty()
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        return Err(invalid());
    }
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
    let value = HeaderValue::from_str(value).map_err(|_| invalid())?;
    Ok((name, value))
}

/// Splits `http://host:port/path?query` into where to connect, what to ask for and the
/// default `Host` header.
fn target(url: &str) -> Result<((String, u16), String, String), HeyError> {
    if !url.contains("://") {
        return Err(HeyError(format!(
            "{url}: unsupported protocol scheme; write http://host[:port]/path"
        )));
    }
    let uri = Uri::from_str(url)
        .map_err(|error| HeyError(format!("{url}: not a valid URL ({error})")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(HeyError(format!(
                "{url}: the built-in hey speaks plain HTTP; load-test https URLs with hey \
                 installed in the image, through `sh -c`"
            )));
        }
        _ => {
            return Err(HeyError(format!(
                "{url}: unsupported protocol scheme; write http://host[:port]/path"
            )));
        }
    }
    let authority = uri
        .authority()
        .ok_or_else(|| HeyError(format!("{url}: the URL has no host")))?;
    if authority.as_str().contains('@') {
        return Err(HeyError(format!(
            "{url}: credentials in the URL are not supported; use -a user:password"
        )));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let path_and_query = uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned());
    let path_and_query = if path_and_query.is_empty() {
        "/".to_owned()
    } else {
        path_and_query
    };
    Ok((
        (host.to_owned(), port),
        path_and_query,
        authority.as_str().to_owned(),
    ))
}

/// Standard base64 with padding (basic auth).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<HeyOptions, HeyError> {
        let words: Vec<&str> = line.split_whitespace().collect();
        HeyOptions::parse(&words)
    }

    #[test]
    fn the_tutorial_load_test_runs_two_workers_at_ten_per_second_for_a_minute() {
        let options = parse("-z 1m -q 10 -c 2 http://podinfo-canary.test:9898/").expect("valid");
        assert_eq!(options.duration, Some(Duration::from_secs(60)));
        assert_eq!(options.requests, None, "-z wins over -n");
        assert_eq!(options.concurrency, 2);
        assert!((options.qps - 10.0).abs() < f64::EPSILON);
        assert_eq!(options.authority, ("podinfo-canary.test".to_owned(), 9898));
        assert_eq!(options.path_and_query, "/");
        assert_eq!(options.headers[header::HOST], "podinfo-canary.test:9898");
        assert_eq!(options.headers[header::USER_AGENT], HEY_USER_AGENT);
        assert_eq!(options.headers[header::CONTENT_TYPE], "text/html");
        assert_eq!(options.headers[header::ACCEPT_ENCODING], "gzip");
        assert_eq!(options.timeout, Some(Duration::from_secs(20)));
        assert!(!options.headers.contains_key(header::CONTENT_LENGTH));
    }

    #[test]
    fn defaults_are_two_hundred_requests_from_fifty_workers_split_evenly() {
        let options = parse("http://h/").expect("valid");
        assert_eq!((options.requests, options.concurrency), (Some(200), 50));
        assert_eq!(options.requests_per_worker(), Some(4));
        let options = parse("-n 10 -c 3 http://h/").expect("valid");
        assert_eq!(
            options.requests_per_worker(),
            Some(3),
            "hey sends 9, not 10"
        );
    }

    #[test]
    fn request_flags_shape_the_request() {
        let options = HeyOptions::parse(&[
            "-m",
            "post",
            "-d",
            "{\"a\":1}",
            "-T",
            "application/json",
            "-A",
            "application/json",
            "-H",
            "X-Canary: insider",
            "-H",
            "User-Agent: probe",
            "-host",
            "podinfo.example.com",
            "-a",
            "user:secret",
            "-t",
            "0",
            "-disable-keepalive",
            "-disable-compression",
            "http://127.0.0.1:8080/api/echo?x=1",
        ])
        .expect("valid");
        assert_eq!(options.method, Method::POST);
        assert_eq!(options.body, Bytes::from_static(b"{\"a\":1}"));
        assert_eq!(options.headers[header::CONTENT_LENGTH], "7");
        assert_eq!(options.headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(options.headers[header::ACCEPT], "application/json");
        assert_eq!(options.headers["x-canary"], "insider");
        assert_eq!(options.headers[header::USER_AGENT], "probe hey/0.0.1");
        assert_eq!(options.headers[header::HOST], "podinfo.example.com");
        assert_eq!(
            options.headers[header::AUTHORIZATION],
            "Basic dXNlcjpzZWNyZXQ="
        );
        assert_eq!(options.headers[header::CONNECTION], "close");
        assert!(!options.headers.contains_key(header::ACCEPT_ENCODING));
        assert_eq!(options.timeout, None);
        assert_eq!(options.path_and_query, "/api/echo?x=1");
    }

    #[test]
    fn the_body_comes_from_a_file_with_capital_d() {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(&mut file, b"payload").expect("write");
        let path = file.path().to_string_lossy().into_owned();
        let options =
            HeyOptions::parse(&["-m", "PUT", "-D", path.as_str(), "http://h/"]).expect("valid");
        assert_eq!(options.body, Bytes::from_static(b"payload"));
        let error =
            HeyOptions::parse(&["-D", "/nonexistent/body", "http://h/"]).expect_err("missing file");
        assert!(error.0.starts_with("-D /nonexistent/body: "), "{error}");
    }

    #[test]
    fn hey_checks_its_numbers_as_hey_does() {
        for (line, message) in [
            ("-n 1 -c 2 http://h/", "-n cannot be less than -c."),
            ("-n 0 http://h/", "-n and -c cannot be smaller than 1."),
            ("-z 10s -c 0 http://h/", "-c cannot be smaller than 1."),
            (
                "-n ten http://h/",
                "invalid value \"ten\" for flag -n: expected a whole number",
            ),
            ("-c 1 -n 1", "the URL to load is missing"),
            (
                "-h X:1 http://h/",
                "Flag '-h' is deprecated, please use '-H' instead.",
            ),
        ] {
            assert_eq!(parse(line).expect_err(line).0, message, "{line}");
        }
        assert!(
            parse("-z ten http://h/")
                .expect_err("bad -z")
                .0
                .contains("-z")
        );
        assert!(
            parse("-H nocolon http://h/")
                .expect_err("bad -H")
                .0
                .contains("nocolon")
        );
    }

    #[test]
    fn unknown_and_unsupported_flags_are_clear_errors() {
        let error = parse("-k http://h/").expect_err("unknown flag");
        assert_eq!(
            error.to_string(),
            format!("hey: flag provided but not defined: -k\n{USAGE}")
        );
        let error = parse("-disable-keepalives http://h/").expect_err("misspelt");
        assert!(
            error.0.contains("did you mean -disable-keepalive?"),
            "{error}"
        );
        for flag in ["-h2", "-o csv", "-x proxy:3128"] {
            let error = parse(&format!("{flag} http://h/")).expect_err(flag);
            assert!(
                error.0.contains("is not supported by the built-in hey"),
                "{error}"
            );
        }
        let error = parse("https://h/").expect_err("https");
        assert!(error.0.contains("plain HTTP"), "{error}");
        let error = parse("h:80/").expect_err("no scheme");
        assert!(error.0.contains("unsupported protocol scheme"), "{error}");
    }

    #[test]
    fn base64_pads_like_the_standard() {
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b""), "");
    }
}
