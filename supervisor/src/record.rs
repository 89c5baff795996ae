//! One line of `joyride trace` output: a finished call, as text or JSON.

use std::fmt::Write as _;
use std::io::Write;
use std::time::Duration;

use joyride_notify::syscall::{errno_name, SockAddr};

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
    /// A record of `call` with `args` and outcome `result` (value or errno).
    pub fn new(pid: u32, call: impl Into<String>, args: Vec<String>, result: Result<i64, i32>, took: Duration) -> Self {
        let (ret, errno, errno_no) = match result {
            Ok(v) => (v, None, 0),
            Err(e) => (-1, Some(errno_name(e)), e),
        };
        Record {
            pid,
            call: call.into(),
            args,
            ret,
            errno,
            errno_no,
            usecs: took.as_micros() as u64,
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

    /// The strace-like text line (without newline).
    pub fn text(&self) -> String {
        let mut s = format!("[pid {:>6}] {}({}) = ", self.pid, self.call, self.args.join(", "));
        match &self.errno {
            None if self.continued => s.push('?'),
            None => {
                let _ = write!(s, "{}", self.ret);
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

/// Where records go.
pub struct Sink {
    out: Box<dyn Write + Send>,
    json: bool,
}

impl Sink {
    /// Records to `out`, as JSON lines if `json`.
    pub fn new(out: Box<dyn Write + Send>, json: bool) -> Self {
        Sink { out, json }
    }

    /// Writes one record. Output errors are reported once and then ignored:
    /// the traced program must not fail because its trace could not be written.
    pub fn emit(&mut self, r: &Record) {
        let line = if self.json {
            serde_json::to_string(r).unwrap_or_default()
        } else {
            r.text()
        };
        if let Err(e) = writeln!(self.out, "{line}") {
            tracing::warn!(error = %e, "cannot write the trace");
        }
    }

    /// Flushes buffered output.
    pub fn flush(&mut self) {
        let _ = self.out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
