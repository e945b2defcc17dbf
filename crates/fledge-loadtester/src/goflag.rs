//! Command-line flags parsed the way Go's `flag` package parses them, because both Flagger's
//! loadtester and `hey` are Go programs and their users write Go flags: one dash or two
//! (`-port=8080`, `--port 8080`), a boolean flag alone means `true` (`-disable-keepalive`) and
//! takes a value only after `=` (`-disable-keepalive=false`), and parsing stops at the first
//! argument that is not a flag (`hey -c 2 http://host/ -n 5` leaves `-n 5` unparsed) or after
//! `--`. A repeated flag keeps every value (`-H a -H b`); the last one wins for the others.

use std::fmt;

/// Whether a flag is a switch or takes a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagKind {
    /// `-flag` or `-flag=true|false`.
    Bool,
    /// `-flag value` or `-flag=value`.
    Value,
}

/// One flag a program accepts.
#[derive(Clone, Copy, Debug)]
pub struct FlagSpec {
    /// The name without dashes (`port`, `disable-keepalive`).
    pub name: &'static str,
    /// Switch or value.
    pub kind: FlagKind,
}

impl FlagSpec {
    /// A flag with a value.
    pub const fn value(name: &'static str) -> Self {
        Self {
            name,
            kind: FlagKind::Value,
        }
    }

    /// A switch.
    pub const fn switch(name: &'static str) -> Self {
        Self {
            name,
            kind: FlagKind::Bool,
        }
    }
}

/// Why the arguments could not be parsed. The message names the flag and says what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    /// A flag nobody defined.
    #[error("flag provided but not defined: -{flag}{}", suggestion.as_ref().map(|s| format!(" (did you mean -{s}?)")).unwrap_or_default())]
    Unknown {
        /// The flag as written, without dashes.
        flag: String,
        /// The closest defined flag, when one is close.
        suggestion: Option<String>,
    },
    /// A value flag at the end of the arguments.
    #[error("flag needs an argument: -{0}")]
    MissingValue(String),
    /// `-switch=maybe`.
    #[error("invalid boolean value {value:?} for -{flag}: use true or false")]
    BadBool {
        /// The switch.
        flag: String,
        /// What was written.
        value: String,
    },
    /// `---x`, `-=x`.
    #[error("bad flag syntax: {0}")]
    Syntax(String),
    /// `-h` or `-help` when the program defines neither.
    #[error("help requested")]
    Help,
}

/// The flags found, in order, and the arguments after them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedFlags {
    values: Vec<(&'static str, String)>,
    /// Arguments after the flags (`hey`'s URL).
    pub positional: Vec<String>,
}

impl ParsedFlags {
    /// The last value given to `name`.
    pub fn last(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(flag, _)| *flag == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value given to `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.values
            .iter()
            .filter(move |(flag, _)| *flag == name)
            .map(|(_, value)| value.as_str())
    }

    /// Whether the switch `name` ended up on (`-name` or `-name=true`).
    pub fn switch(&self, name: &str) -> bool {
        self.last(name).is_some_and(|value| value == "true")
    }
}

impl fmt::Display for FlagSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "-{}", self.name)
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Parses `args` (without the program name) against `specs`.
pub fn parse<S: AsRef<str>>(specs: &[FlagSpec], args: &[S]) -> Result<ParsedFlags, FlagError> {
    let mut parsed = ParsedFlags::default();
    let mut index = 0;
    while index < args.len() {
        let arg = args[index].as_ref();
        if arg == "--" {
            index += 1;
            break;
        }
        if arg.len() < 2 || !arg.starts_with('-') {
            break;
        }
        index += 1;
        let body = arg
            .strip_prefix("--")
            .unwrap_or_else(|| &arg[1..])
            .to_owned();
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(FlagError::Syntax(arg.to_owned()));
        }
        let (name, inline) = match body.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (body, None),
        };
        let Some(spec) = specs.iter().find(|spec| spec.name == name) else {
            if name == "h" || name == "help" {
                return Err(FlagError::Help);
            }
            let suggestion = specs
                .iter()
                .map(|spec| (strsim::jaro_winkler(spec.name, &name), spec.name))
                .filter(|(score, _)| *score > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, spec)| spec.to_owned());
            return Err(FlagError::Unknown {
                flag: name,
                suggestion,
            });
        };
        let value = match (spec.kind, inline) {
            (FlagKind::Bool, None) => "true".to_owned(),
            (FlagKind::Bool, Some(value)) => match parse_go_bool(&value) {
                Some(on) => on.to_string(),
                None => {
                    return Err(FlagError::BadBool { flag: name, value });
                }
            },
            (FlagKind::Value, Some(value)) => value,
            (FlagKind::Value, None) => {
                let Some(next) = args.get(index) else {
                    return Err(FlagError::MissingValue(name));
                };
                index += 1;
                next.as_ref().to_owned()
            }
        };
        parsed.values.push((spec.name, value));
    }
    parsed.positional = args[index..]
        .iter()
        .map(|arg| arg.as_ref().to_owned())
        .collect();
    Ok(parsed)
}

/// Splits a command line into words as `sh` would for a simple command: single quotes,
/// double quotes (with `\"`, `\\`, `\$` and `` \` `` escapes) and backslashes. `None` when the
/// line needs a shell: an unquoted `|`, `&`, `;`, `<`, `>`, `(`, `)`, `$` or `` ` ``, a `~` or
/// `#` starting a word, a newline, or an unterminated quote. Glob characters (`*`, `?`, `[`)
/// stay literal, as they do in `sh` when no file matches (a URL's query string).
pub fn split_simple_command(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        other => word.push(other),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            escaped @ ('"' | '\\' | '$' | '`') => word.push(escaped),
                            '\n' => {}
                            other => {
                                word.push('\\');
                                word.push(other);
                            }
                        },
                        '$' | '`' => return None,
                        other => word.push(other),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next()? {
                    '\n' => {}
                    other => word.push(other),
                }
            }
            '|' | '&' | ';' | '<' | '>' | '(' | ')' | '$' | '`' | '\n' => {
                return None;
            }
            '~' | '#' if !in_word => return None,
            other => {
                in_word = true;
                word.push(other);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: [FlagSpec; 4] = [
        FlagSpec::value("port"),
        FlagSpec::value("H"),
        FlagSpec::switch("disable-keepalive"),
        FlagSpec::value("timeout"),
    ];

    #[test]
    fn one_or_two_dashes_inline_or_separate_values_and_the_last_wins() {
        let parsed = parse(
            &SPECS,
            &[
                "-port=1",
                "--port",
                "2",
                "-H",
                "A: b",
                "--H=C: d",
                "-disable-keepalive",
            ],
        )
        .expect("valid flags");
        assert_eq!(parsed.last("port"), Some("2"));
        assert_eq!(parsed.all("H").collect::<Vec<_>>(), ["A: b", "C: d"]);
        assert!(parsed.switch("disable-keepalive"));
        assert!(parsed.positional.is_empty());
    }

    #[test]
    fn parsing_stops_at_the_first_argument_that_is_not_a_flag() {
        let parsed =
            parse(&SPECS, &["-port", "-5", "http://x/", "-timeout", "1s"]).expect("valid flags");
        assert_eq!(parsed.last("port"), Some("-5"));
        assert_eq!(parsed.last("timeout"), None);
        assert_eq!(parsed.positional, ["http://x/", "-timeout", "1s"]);
        let parsed = parse(&SPECS, &["--", "-port"]).expect("valid flags");
        assert_eq!(parsed.positional, ["-port"]);
    }

    #[test]
    fn a_switch_takes_a_value_only_after_an_equals_sign() {
        let parsed = parse(&SPECS, &["-disable-keepalive=false", "true"]).expect("valid");
        assert!(!parsed.switch("disable-keepalive"));
        assert_eq!(parsed.positional, ["true"]);
        assert_eq!(
            parse(&SPECS, &["-disable-keepalive=maybe"]),
            Err(FlagError::BadBool {
                flag: "disable-keepalive".to_owned(),
                value: "maybe".to_owned()
            })
        );
    }

    #[test]
    fn unknown_and_incomplete_flags_are_named() {
        let error = parse(&SPECS, &["-prot=1"]).expect_err("unknown flag");
        assert_eq!(
            error.to_string(),
            "flag provided but not defined: -prot (did you mean -port?)"
        );
        assert_eq!(
            parse(&SPECS, &["-timeout"]),
            Err(FlagError::MissingValue("timeout".to_owned()))
        );
        assert_eq!(parse(&SPECS, &["-help"]), Err(FlagError::Help));
        assert!(matches!(
            parse(&SPECS, &["---port"]),
            Err(FlagError::Syntax(_))
        ));
    }

    #[test]
    fn simple_commands_split_like_sh_and_shell_syntax_is_left_to_the_shell() {
        assert_eq!(
            split_simple_command(r#"hey -H "X-Token: a b" -d '{"x": 1}' http://h/\ x"#),
            Some(
                [
                    "hey",
                    "-H",
                    "X-Token: a b",
                    "-d",
                    r#"{"x": 1}"#,
                    "http://h/ x"
                ]
                .map(str::to_owned)
                .to_vec()
            )
        );
        assert_eq!(
            split_simple_command("hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/"),
            Some(
                [
                    "hey",
                    "-z",
                    "1m",
                    "-q",
                    "10",
                    "-c",
                    "2",
                    "http://podinfo-canary.test:9898/"
                ]
                .map(str::to_owned)
                .to_vec()
            )
        );
        for needs_shell in [
            "hey http://x/ | tee out",
            "hey http://x/ > out",
            "hey $URL",
            "hey \"$URL\"",
            "hey http://x/; echo done",
            "hey 'unterminated",
            "hey http://x/?a=1&b=2",
        ] {
            assert_eq!(split_simple_command(needs_shell), None, "{needs_shell}");
        }
    }
}
