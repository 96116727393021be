//! A small line logger: stderr or an append-only file, never stdout (stdout
//! carries the one CNI result document). Every line is one line: control
//! characters in anything logged (config values, CNI_NETNS, error texts) are
//! escaped, so a config cannot forge log lines or terminal escapes.

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.to_ascii_lowercase().as_str() {
            "error" => Level::Error,
            "warn" | "warning" => Level::Warn,
            "info" => Level::Info,
            "debug" => Level::Debug,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }
}

struct Logger {
    level: Level,
    file: Option<Mutex<File>>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Configure once per process. Env `MACTRUNK_LOG` (a level) overrides the
/// config's `logLevel`. Without a log file only warnings and errors go to
/// stderr, so runtimes that show plugin stderr are not flooded.
pub fn init(config_level: Option<&str>, file: Option<&str>, env_level: Option<&str>) {
    let default = if file.is_some() {
        Level::Info
    } else {
        Level::Warn
    };
    let level = env_level
        .and_then(Level::parse)
        .or_else(|| config_level.and_then(Level::parse))
        .unwrap_or(default);
    let file = file.and_then(|path| match crate::sys::fs::open_append(Path::new(path)) {
        Ok(f) => Some(Mutex::new(f)),
        Err(e) => {
            let line = format!("mactrunk: ignoring logFile {path}: {e}; logging to stderr\n");
            let _ = std::io::stderr().write_all(escape_controls(&line).as_bytes());
            None
        }
    });
    let _ = LOGGER.set(Logger { level, file });
}

pub fn enabled(level: Level) -> bool {
    level <= LOGGER.get().map_or(Level::Warn, |l| l.level)
}

/// The time each phase of one command took, logged as one debug line at
/// the end (`phases ADD netns=0.05 parent=0.07 ...` in ms): the profile of
/// a real call, at no cost unless the level is debug.
pub struct Phases {
    on: bool,
    last: Instant,
    marks: Vec<(&'static str, Duration)>,
}

impl Phases {
    pub fn start() -> Phases {
        Phases {
            on: enabled(Level::Debug),
            last: Instant::now(),
            marks: Vec::new(),
        }
    }

    /// The phase `name` ended now.
    pub fn mark(&mut self, name: &'static str) {
        if self.on {
            let now = Instant::now();
            self.marks.push((name, now - self.last));
            self.last = now;
        }
    }

    pub fn log(&self, command: &str) {
        if self.on {
            let parts: Vec<String> = self
                .marks
                .iter()
                .map(|(n, d)| format!("{n}={:.3}", d.as_secs_f64() * 1000.0))
                .collect();
            write(
                Level::Debug,
                format_args!("phases {command} {}", parts.join(" ")),
            );
        }
    }
}

pub fn write(level: Level, args: fmt::Arguments<'_>) {
    match LOGGER.get() {
        Some(l) => l.write(level, args),
        None => Logger {
            level: Level::Warn,
            file: None,
        }
        .write(level, args),
    }
}

impl Logger {
    fn write(&self, level: Level, args: fmt::Arguments<'_>) {
        if level > self.level {
            return;
        }
        let msg = args.to_string();
        let line = format!(
            "{} mactrunk[{}] {} {}\n",
            timestamp(SystemTime::now()),
            std::process::id(),
            level.as_str(),
            escape_controls(&msg)
        );
        match &self.file {
            Some(f) => {
                if let Ok(mut f) = f.lock() {
                    let _ = f.write_all(line.as_bytes());
                }
            }
            None => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }
}

/// A character that must not reach a terminal or a log line as it is: a
/// control character, a Unicode line separator, a bidi override.
fn hostile(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every control character (and the Unicode line separators and
/// bidi overrides that reorder a terminal line) written as a Rust escape:
/// `\n`, `\u{1b}`, ... Text without them is returned as it is.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    // The trailing newline of a finished line stays a newline.
    let Some(body) = s.strip_suffix('\n') else {
        return escape_field(s);
    };
    match escape_field(body) {
        Cow::Borrowed(_) => Cow::Borrowed(s),
        Cow::Owned(mut out) => {
            out.push('\n');
            Cow::Owned(out)
        }
    }
}

/// One field (a table cell, a name inside a message) with every character
/// [`escape_controls`] escapes escaped, a trailing newline included.
pub fn escape_field(s: &str) -> Cow<'_, str> {
    if !s.chars().any(hostile) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if hostile(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `log_at!(Level::Info, "format", args...)`: one line, if the level is on.
macro_rules! log_at {
    ($lvl:expr, $($arg:tt)*) => { $crate::sys::log::write($lvl, format_args!($($arg)*)) };
}
pub(crate) use log_at;

/// RFC 3339 UTC with milliseconds, without a date crate.
pub fn timestamp(t: SystemTime) -> String {
    let millis = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_millis();
    let s = rfc3339_seconds(t);
    format!("{}.{millis:03}Z", s.trim_end_matches('Z'))
}

/// RFC 3339 UTC to the second, `YYYY-MM-DDTHH:MM:SSZ` (times before 1970 clamp to it).
pub fn rfc3339_seconds(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_435_200_123);
        assert_eq!(timestamp(t), "2026-11-23T12:00:00.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(timestamp(leap), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_seconds(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(1_709_251_199)),
            "2024-02-29T23:59:59Z"
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_controls("plain text"), "plain text");
        assert!(matches!(escape_controls("plain\n"), Cow::Borrowed(_)));
        assert_eq!(
            escape_controls("a\nFAKE LINE\r\u{1b}[31m\u{202e}x"),
            "a\\nFAKE LINE\\r\\u{1b}[31m\\u{202e}x"
        );
        assert_eq!(escape_controls("line\tx\n"), "line\\tx\n");
        assert_eq!(escape_field("a\n"), "a\\n");
        assert!(matches!(escape_field("c1"), Cow::Borrowed(_)));
        assert_eq!(
            escape_field("\u{1b}[31mred\u{202e}"),
            "\\u{1b}[31mred\\u{202e}"
        );
    }

    #[test]
    fn file_lines_are_single_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log");
        let file = crate::sys::fs::open_append(&p).unwrap();
        let logger = Logger {
            level: Level::Info,
            file: Some(Mutex::new(file)),
        };
        logger.write(
            Level::Info,
            format_args!(
                "resolvConf {}",
                "/x\n2026-01-01T00:00:00Z mactrunk[1] ERROR forged"
            ),
        );
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("/x\\n2026"), "{text}");
    }

    #[test]
    fn levels() {
        assert_eq!(Level::parse("DEBUG"), Some(Level::Debug));
        assert_eq!(Level::parse("nope"), None);
        assert!(Level::Error < Level::Debug);
    }
}
