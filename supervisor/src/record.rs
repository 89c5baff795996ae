//! One line of `joyride trace` output: a finished call, as text or JSON, and
//! the sink that prints calls the way strace's output options ask.
//!
//! The call families render their arguments once, when the call finishes
//! ([`Record`]); everything strace's output options change afterwards (which
//! calls are printed, timestamps, string size, what a file descriptor is, the
//! `-c` table) is the [`Sink`]'s business, so the data path pays for an
//! option only when it is given.

mod fds;
mod strings;
mod summary;

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use joyride_notify::syscall::{errno_name, SockAddr};

pub use self::strings::CAPTURED;
pub use self::summary::SortBy;

/// A finished (or refused) network call.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Record {
    /// Calling thread.
    pub pid: u32,
    /// The call's name (`connect`, or `socketcall` for i386).
    pub call: String,
    /// Arguments, rendered like strace.
    pub args: Vec<String>,
    /// Return value, or -1 on error.
    pub ret: i64,
    /// Error name (`ECONNREFUSED`) when the call failed.
    pub errno: Option<String>,
    /// The error number, for its description.
    #[serde(skip)]
    errno_no: i32,
    /// Time from trap to answer, in microseconds.
    pub usecs: u64,
    /// Time from trap to answer.
    #[serde(skip)]
    took: Duration,
    /// When the call was trapped (wall clock).
    #[serde(skip)]
    start: SystemTime,
    /// The address the call named or returned, decoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<SockAddr>,
    /// Why Joyride refused the call, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The call was left to the kernel (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`):
    /// the kernel ran it in the program's context and its result is not
    /// seen here (`= ?`, as strace prints an unfinished call).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub continued: bool,
}

impl Record {
    /// A record of `call` with `args` and outcome `result` (value or errno),
    /// made when the call has just finished: it started `took` ago.
    pub fn new(pid: u32, call: impl Into<String>, args: Vec<String>, result: Result<i64, i32>, took: Duration) -> Self {
        let (ret, errno, errno_no) = match result {
            Ok(v) => (v, None, 0),
            Err(e) => (-1, Some(errno_name(e)), e),
        };
        let now = SystemTime::now();
        Record {
            pid,
            call: call.into(),
            args,
            ret,
            errno,
            errno_no,
            usecs: took.as_micros() as u64,
            took,
            start: now.checked_sub(took).unwrap_or(now),
            addr: None,
            note: None,
            continued: false,
        }
    }

    /// A call left to the kernel: its arguments as trapped, no result.
    pub fn continued(pid: u32, call: impl Into<String>, args: Vec<String>, took: Duration) -> Self {
        let mut r = Record::new(pid, call, args, Ok(0), took);
        r.continued = true;
        r.note = Some("left to the kernel".into());
        r
    }

    /// How long the call took, from trap to answer.
    pub fn took(&self) -> Duration {
        self.took
    }

    /// Whether the call failed (returned -1 with an errno).
    pub fn failed(&self) -> bool {
        self.errno.is_some()
    }

    /// The strace-like text line (without newline), with `stamp` after the
    /// pid, `args` in place of the record's and `ret_fd` (what the returned
    /// descriptor is) after the result.
    fn line(&self, stamp: &str, args: &[String], ret_fd: Option<&str>) -> String {
        let mut s = format!("[pid {:>6}] {stamp}{}({}) = ", self.pid, self.call, args.join(", "));
        match &self.errno {
            None if self.continued => s.push('?'),
            None => {
                let _ = write!(s, "{}", self.ret);
                if let Some(what) = ret_fd {
                    let _ = write!(s, "<{what}>");
                }
            }
            Some(name) => {
                let desc = errno_desc(self.errno_no);
                let _ = write!(s, "-1 {name} ({desc})");
            }
        }
        if let Some(note) = &self.note {
            let _ = write!(s, " [{note}]");
        }
        let _ = write!(s, " <{}.{:06}>", self.usecs / 1_000_000, self.usecs % 1_000_000);
        s
    }
}

/// strerror's text for `errno`, without Rust's "(os error N)" suffix.
fn errno_desc(errno: i32) -> String {
    if errno == joyride_notify::ERESTARTSYS {
        return "To be restarted if SA_RESTART is set".into();
    }
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    match text.rfind(" (os error") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// Which outcomes are printed (strace's `-e status=`). Calls that never
/// returned (`unfinished`, `detached`) are not recorded at all, so they have
/// no flag here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Calls that returned without an error.
    pub successful: bool,
    /// Calls that returned -1 with an errno.
    pub failed: bool,
    /// Calls left to the kernel, whose result is not seen (`= ?`).
    pub unavailable: bool,
}

impl Status {
    /// Every outcome.
    pub const ALL: Status = Status {
        successful: true,
        failed: true,
        unavailable: true,
    };
    /// No outcome.
    pub const NONE: Status = Status {
        successful: false,
        failed: false,
        unavailable: false,
    };

    /// Whether `r` is printed.
    pub fn shows(&self, r: &Record) -> bool {
        if r.continued {
            self.unavailable
        } else if r.failed() {
            self.failed
        } else {
            self.successful
        }
    }

    /// The outcomes not in `self`.
    pub fn complement(self) -> Status {
        Status {
            successful: !self.successful,
            failed: !self.failed,
            unavailable: !self.unavailable,
        }
    }
}

/// The timestamp at the start of each line (strace's `-t`, `-tt`, `-ttt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// None.
    None,
    /// `HH:MM:SS`, local time.
    Seconds,
    /// `HH:MM:SS.micro`, local time.
    Micros,
    /// `seconds.micro` since the epoch.
    Epoch,
}

/// How the sink prints calls.
#[derive(Debug, Clone)]
pub struct Show {
    /// One JSON object per line instead of strace's text.
    pub json: bool,
    /// Print each call (false for `-c`).
    pub lines: bool,
    /// Print the `-c` table at the end, sorted so.
    pub summary: Option<SortBy>,
    /// Which outcomes are printed.
    pub status: Status,
    /// Timestamp kind.
    pub stamp: Stamp,
    /// Prefix the time since the previous line's call started (`-r`).
    pub relative: bool,
    /// Bytes of data shown per string (`-s`).
    pub strsize: usize,
    /// Show what file descriptors are (`-y`).
    pub decode_fds: bool,
    /// Local time's offset from UTC in seconds, for `Stamp::Seconds` and
    /// `Stamp::Micros`.
    pub utc_offset: i64,
}

impl Default for Show {
    /// Every call, as text, as `joyride trace` prints it with no options.
    fn default() -> Self {
        Show {
            json: false,
            lines: true,
            summary: None,
            status: Status::ALL,
            stamp: Stamp::None,
            relative: false,
            strsize: CAPTURED,
            decode_fds: false,
            utc_offset: 0,
        }
    }
}

/// Where records go.
pub struct Sink {
    out: Box<dyn Write + Send>,
    show: Show,
    summary: Option<summary::Summary>,
    fds: Option<fds::FdNames>,
    /// When the previous printed call started, for `-r`.
    last_start: Option<SystemTime>,
    /// A write failed (and was reported).
    write_failed: bool,
    finished: bool,
}

impl Sink {
    /// Records to `out`, printed as `show` says.
    pub fn with(out: Box<dyn Write + Send>, show: Show) -> Self {
        Sink {
            out,
            summary: show.summary.map(|_| summary::Summary::default()),
            fds: show.decode_fds.then(fds::FdNames::default),
            show,
            last_start: None,
            write_failed: false,
            finished: false,
        }
    }

    /// Writes one record (and counts it for the summary). Output errors are
    /// reported once and then ignored: the traced program must not fail
    /// because its trace could not be written.
    pub fn emit(&mut self, r: &Record) {
        if let Some(s) = &mut self.summary {
            s.add(r);
        }
        if !self.show.lines || !self.show.status.shows(r) {
            return;
        }
        let line = self.render(r);
        self.write(&line);
    }

    fn render(&mut self, r: &Record) -> String {
        let mut args = Cow::Borrowed(&r.args[..]);
        if self.show.strsize < CAPTURED {
            if let Some(cut) = strings::cut_args(&r.call, &r.args, self.show.strsize) {
                args = Cow::Owned(cut);
            }
        }
        let mut ret_fd = None;
        if let Some(fds) = &mut self.fds {
            if let Some(decorated) = fds.decorate_args(r.pid, &r.call, &args) {
                args = Cow::Owned(decorated);
            }
            ret_fd = fds.returned(r);
        }
        let relative = self.show.relative.then(|| {
            let since = match self.last_start {
                Some(last) => signed_since(r.start, last),
                None => 0,
            };
            self.last_start = Some(r.start);
            since
        });
        if self.show.json {
            return self.json(r, &args, ret_fd.as_deref());
        }
        let stamp = self.stamp(r.start, relative);
        r.line(&stamp, &args, ret_fd.as_deref())
    }

    /// The `-t`/`-tt`/`-ttt` and `-r` prefix for a call that started at
    /// `start`, `relative` microseconds after the previous line's (with its
    /// trailing space; empty without those options).
    fn stamp(&self, start: SystemTime, relative: Option<i64>) -> String {
        let since_epoch = start.duration_since(UNIX_EPOCH).unwrap_or_default();
        let (secs, micros) = (since_epoch.as_secs() as i64, since_epoch.subsec_micros());
        let day = || {
            let t = (secs + self.show.utc_offset).rem_euclid(86_400);
            format!("{:02}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60)
        };
        let mut stamp = match self.show.stamp {
            Stamp::None => String::new(),
            Stamp::Seconds => day(),
            Stamp::Micros => format!("{}.{micros:06}", day()),
            Stamp::Epoch => format!("{secs}.{micros:06}"),
        };
        if let Some(us) = relative {
            let (s, u) = (us.unsigned_abs() / 1_000_000, us.unsigned_abs() % 1_000_000);
            if stamp.is_empty() {
                // strace's `%6ld.%06ld`.
                let text = format!("{}{s}.{u:06}", if us < 0 { "-" } else { "" });
                stamp = format!("{text:>13}");
            } else {
                let sign = if us < 0 { '-' } else { '+' };
                let _ = write!(stamp, " ({sign}{s:>6}.{u:06})");
            }
        }
        if !stamp.is_empty() {
            stamp.push(' ');
        }
        stamp
    }

    fn json(&self, r: &Record, args: &[String], ret_fd: Option<&str>) -> String {
        let stamped = self.show.stamp != Stamp::None || self.show.relative;
        if !stamped && ret_fd.is_none() && args == &r.args[..] {
            return serde_json::to_string(r).unwrap_or_default();
        }
        let Ok(mut v) = serde_json::to_value(r) else {
            return String::new();
        };
        v["args"] = serde_json::json!(args);
        if let Some(what) = ret_fd {
            v["ret_fd"] = serde_json::json!(what);
        }
        if stamped {
            let since_epoch = r.start.duration_since(UNIX_EPOCH).unwrap_or_default();
            v["start_us"] = serde_json::json!(since_epoch.as_micros() as u64);
        }
        v.to_string()
    }

    fn write(&mut self, text: &str) {
        if let Err(e) = writeln!(self.out, "{text}") {
            if !self.write_failed {
                tracing::warn!(error = %e, "cannot write the trace");
            }
            self.write_failed = true;
        }
    }

    /// Flushes buffered output.
    pub fn flush(&mut self) {
        let _ = self.out.flush();
    }

    /// Writes the `-c` table, if asked for, and flushes. Idempotent; also
    /// done when the sink is dropped, which is when the engine that owns it
    /// has seen the traced programs' last call.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        if let (Some(s), Some(sort)) = (&self.summary, self.show.summary) {
            let text = if self.show.json { s.json(sort) } else { s.table(sort) };
            if !text.is_empty() {
                if let Err(e) = self.out.write_all(text.as_bytes()) {
                    tracing::warn!(error = %e, "cannot write the summary");
                }
            }
        }
        self.flush();
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `a - b` in microseconds, negative when `a` is earlier: the difference of
/// the two times as `-tt` prints them (whole microseconds).
fn signed_since(a: SystemTime, b: SystemTime) -> i64 {
    let micros = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as i64;
    micros(a) - micros(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    impl Record {
        fn text(&self) -> String {
            self.line("", &self.args, None)
        }
    }

    #[test]
    fn text_like_strace() {
        let r = Record::new(
            42,
            "connect",
            vec!["3".into(), "{sa_family=AF_INET}".into(), "16".into()],
            Err(libc::ECONNREFUSED),
            Duration::from_micros(1234),
        );
        assert_eq!(
            r.text(),
            "[pid     42] connect(3, {sa_family=AF_INET}, 16) = -1 ECONNREFUSED (Connection refused) <0.001234>"
        );
        let ok = Record::new(7, "listen", vec!["3".into(), "128".into()], Ok(0), Duration::ZERO);
        assert_eq!(ok.text(), "[pid      7] listen(3, 128) = 0 <0.000000>");
    }

    #[test]
    fn json_lines() {
        let r = Record::new(1, "socket", vec![], Ok(3), Duration::from_micros(5));
        let v: serde_json::Value = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(v["call"], "socket");
        assert_eq!(v["ret"], 3);
        assert!(v["errno"].is_null());
        assert!(v.get("start_us").is_none());
    }

    #[test]
    fn start_is_trap_time() {
        let before = SystemTime::now();
        let r = Record::new(1, "accept", vec![], Ok(4), Duration::from_secs(2));
        let after = SystemTime::now();
        assert!(r.start <= after - Duration::from_secs(2));
        assert!(r.start >= before - Duration::from_secs(2));
    }

    /// A writer whose bytes a test can read afterwards.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn printed(show: Show, records: &[Record]) -> String {
        let out = Shared::default();
        let mut sink = Sink::with(Box::new(out.clone()), show);
        for r in records {
            sink.emit(r);
        }
        drop(sink);
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    fn sample() -> Vec<Record> {
        vec![
            Record::new(5, "socket", vec!["AF_INET".into()], Ok(3), Duration::from_micros(10)),
            Record::new(
                5,
                "connect",
                vec!["3".into()],
                Err(libc::ECONNREFUSED),
                Duration::from_micros(30),
            ),
            Record::continued(5, "sendmsg", vec!["3".into()], Duration::from_micros(2)),
        ]
    }

    #[test]
    fn status_filters_lines_not_counts() {
        let only_failed = Show {
            status: Status {
                failed: true,
                ..Status::NONE
            },
            summary: Some(SortBy::Time),
            ..Show::default()
        };
        let text = printed(only_failed, &sample());
        let calls: Vec<&str> = text.lines().filter(|l| l.starts_with("[pid")).collect();
        assert_eq!(calls.len(), 1, "{text}");
        assert!(calls[0].contains("connect(3) = -1 ECONNREFUSED"));
        // The table still counts all three.
        assert!(
            text.lines().any(|l| l.ends_with(" total") && l.contains(" 3 ")),
            "{text}"
        );
        let unavailable = Show {
            status: Status {
                unavailable: true,
                ..Status::NONE
            },
            ..Show::default()
        };
        let text = printed(unavailable, &sample());
        assert_eq!(text.lines().count(), 1);
        assert!(text.contains("sendmsg(3) = ? [left to the kernel]"), "{text}");
    }

    #[test]
    fn summary_only_prints_the_table() {
        let show = Show {
            lines: false,
            summary: Some(SortBy::Time),
            ..Show::default()
        };
        let text = printed(show, &sample());
        assert!(text.starts_with("% time "), "{text}");
        assert!(!text.contains("[pid"));
    }

    #[test]
    fn timestamps() {
        let r = Record::new(
            9,
            "listen",
            vec!["3".into(), "1".into()],
            Ok(0),
            Duration::from_micros(250),
        );
        let since = r.start.duration_since(UNIX_EPOCH).unwrap();
        let show = |stamp, relative| Show {
            stamp,
            relative,
            ..Show::default()
        };
        let epoch = printed(show(Stamp::Epoch, false), std::slice::from_ref(&r));
        let want = format!(
            "[pid      9] {}.{:06} listen(3, 1)",
            since.as_secs(),
            since.subsec_micros()
        );
        assert!(epoch.starts_with(&want), "{epoch} vs {want}");
        let micros = printed(show(Stamp::Micros, false), std::slice::from_ref(&r));
        let t = since.as_secs() % 86_400;
        let want = format!(
            "[pid      9] {:02}:{:02}:{:02}.{:06} listen",
            t / 3600,
            t / 60 % 60,
            t % 60,
            since.subsec_micros()
        );
        assert!(micros.starts_with(&want), "{micros} vs {want}");
        let mut later = r.clone();
        later.start += Duration::from_micros(1500);
        let rel = printed(show(Stamp::None, true), &[r.clone(), later.clone(), r.clone()]);
        let lines: Vec<&str> = rel.lines().collect();
        assert!(lines[0].starts_with("[pid      9]      0.000000 listen"), "{rel}");
        assert!(lines[1].starts_with("[pid      9]      0.001500 listen"), "{rel}");
        assert!(lines[2].starts_with("[pid      9]     -0.001500 listen"), "{rel}");
        let both = printed(show(Stamp::Seconds, true), &[r, later]);
        assert!(
            both.lines().nth(1).unwrap().contains(":") && both.contains(" (+     0.001500) listen"),
            "{both}"
        );
    }

    #[test]
    fn json_gains_start_with_timestamps() {
        let r = Record::new(1, "socket", vec![], Ok(3), Duration::from_micros(5));
        let show = Show {
            json: true,
            stamp: Stamp::Epoch,
            ..Show::default()
        };
        let text = printed(show, std::slice::from_ref(&r));
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        let want = r.start.duration_since(UNIX_EPOCH).unwrap().as_micros() as u64;
        assert_eq!(v["start_us"], want);
        assert_eq!(v["call"], "socket");
    }

    #[test]
    fn strsize_cuts_data() {
        let r = Record::new(
            2,
            "sendto",
            vec!["3".into(), "\"GET / HTTP/1.1\\r\\nHost\"...".into(), "79".into()],
            Ok(79),
            Duration::ZERO,
        );
        let show = Show {
            strsize: 8,
            ..Show::default()
        };
        let text = printed(show, &[r]);
        assert!(text.contains("sendto(3, \"GET / HT\"..., 79)"), "{text}");
    }
}
