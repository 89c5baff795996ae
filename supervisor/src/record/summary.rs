//! strace's `-c`: calls, errors and time per call, printed when tracing ends
//! in strace's table (`% time  seconds  usecs/call  calls  errors syscall`,
//! a total line) or as one JSON object.
//!
//! Times are wall-clock, from trap to answer (what `strace -c -w` sums; plain
//! `strace -c` sums the kernel's CPU time instead).

use std::cmp::Reverse;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::Record;

/// The order of the `-c` table (strace's `-S`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    /// Total time, longest first (strace's default).
    Time,
    /// Mean time per call, longest first.
    AvgTime,
    /// Calls, most first.
    Calls,
    /// Errors, most first.
    Errors,
    /// Name.
    Name,
    /// System call number.
    None,
}

impl SortBy {
    /// Parses a `-S` value: strace's column names and their aliases.
    pub fn parse(s: &str) -> Result<SortBy, String> {
        Ok(match s {
            "time" | "time_percent" | "time-percent" | "time_total" | "time-total" | "total_time" | "total-time" => {
                SortBy::Time
            }
            "avg_time" | "avg-time" | "time_avg" | "time-avg" => SortBy::AvgTime,
            "calls" | "count" => SortBy::Calls,
            "errors" | "error" => SortBy::Errors,
            "name" | "syscall" | "syscall_name" | "syscall-name" => SortBy::Name,
            "none" | "nothing" => SortBy::None,
            _ => return Err(format!("`{s}`: sort by time, avg_time, calls, errors, name or none")),
        })
    }
}

/// Counts of one call.
#[derive(Debug, Default, Clone, Copy)]
struct Row {
    calls: u64,
    errors: u64,
    time: Duration,
}

/// Counts per call name.
#[derive(Debug, Default)]
pub struct Summary {
    rows: HashMap<String, Row>,
}

impl Summary {
    /// Counts `r`.
    pub fn add(&mut self, r: &Record) {
        let row = match self.rows.get_mut(r.call.as_str()) {
            Some(row) => row,
            None => self.rows.entry(r.call.clone()).or_default(),
        };
        row.calls += 1;
        row.errors += u64::from(r.failed());
        row.time += r.took();
    }

    /// The rows in `sort` order; ties (and `SortBy::None`) in system call
    /// number order, as strace's table has them.
    fn sorted(&self, sort: SortBy) -> Vec<(&str, Row)> {
        let mut rows: Vec<(&str, Row)> = self.rows.iter().map(|(n, r)| (n.as_str(), *r)).collect();
        rows.sort_by_key(|(name, _)| (number(name), *name));
        let avg = |r: &Row| r.time.as_nanos() / u128::from(r.calls.max(1));
        // Stable sorts: ties stay in number order.
        match sort {
            SortBy::Time => rows.sort_by_key(|(_, r)| Reverse(r.time)),
            SortBy::AvgTime => rows.sort_by_key(|(_, r)| Reverse(avg(r))),
            SortBy::Calls => rows.sort_by_key(|(_, r)| Reverse(r.calls)),
            SortBy::Errors => rows.sort_by_key(|(_, r)| Reverse(r.errors)),
            SortBy::Name => rows.sort_by(|a, b| a.0.cmp(b.0)),
            SortBy::None => {}
        }
        rows
    }

    /// strace's table; empty if nothing was counted (strace prints nothing
    /// then).
    pub fn table(&self, sort: SortBy) -> String {
        if self.rows.is_empty() {
            return String::new();
        }
        let rows = self.sorted(sort);
        let total_time: Duration = rows.iter().map(|(_, r)| r.time).sum();
        let total_calls: u64 = rows.iter().map(|(_, r)| r.calls).sum();
        let total_errors: u64 = rows.iter().map(|(_, r)| r.errors).sum();
        let avg_us = |time: Duration, calls: u64| (time.as_nanos() / u128::from(calls.max(1)) / 1000) as u64;
        let max_avg = rows.iter().map(|(_, r)| avg_us(r.time, r.calls)).max().unwrap_or(0);
        let max_name = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        // strace's widths: its historical minimums, wider when the numbers are.
        let secs = |d: Duration| format!("{}.{:06}", d.as_secs(), d.subsec_micros());
        let w_secs = secs(total_time).len().max(11);
        let w_avg = max_avg.to_string().len().max(11);
        let w_calls = total_calls.to_string().len().max(9);
        let w_errors = total_errors.to_string().len().max(9);
        let w_name = (max_name + 1).max(16);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:>6} {:>w_secs$} {:>w_avg$} {:>w_calls$} {:>w_errors$} syscall",
            "% time", "seconds", "usecs/call", "calls", "errors"
        );
        let rule = [6, w_secs, w_avg, w_calls, w_errors, w_name]
            .map(|w| "-".repeat(w))
            .join(" ");
        let _ = writeln!(s, "{rule}");
        let blank_zero = |n: u64| if n == 0 { String::new() } else { n.to_string() };
        for (name, r) in &rows {
            let percent = if r.time.is_zero() {
                0.0
            } else {
                100.0 * r.time.as_secs_f64() / total_time.as_secs_f64()
            };
            let _ = writeln!(
                s,
                "{percent:>6.2} {:>w_secs$} {:>w_avg$} {:>w_calls$} {:>w_errors$} {name}",
                secs(r.time),
                avg_us(r.time, r.calls),
                r.calls,
                blank_zero(r.errors),
            );
        }
        let _ = writeln!(s, "{rule}");
        let _ = writeln!(
            s,
            "{:>6.2} {:>w_secs$} {:>w_avg$} {:>w_calls$} {:>w_errors$} total",
            100.0,
            secs(total_time),
            avg_us(total_time, total_calls),
            total_calls,
            blank_zero(total_errors),
        );
        s
    }

    /// The table as one JSON object (and a newline): `{"summary": [{"syscall",
    /// "calls", "errors", "usecs"}...], "total": {...}}`; empty if nothing
    /// was counted.
    pub fn json(&self, sort: SortBy) -> String {
        if self.rows.is_empty() {
            return String::new();
        }
        let row = |name: &str, r: &Row| {
            serde_json::json!({
                "syscall": name,
                "calls": r.calls,
                "errors": r.errors,
                "usecs": r.time.as_micros() as u64,
            })
        };
        let rows = self.sorted(sort);
        let total = rows.iter().fold(Row::default(), |t, (_, r)| Row {
            calls: t.calls + r.calls,
            errors: t.errors + r.errors,
            time: t.time + r.time,
        });
        let v = serde_json::json!({
            "summary": rows.iter().map(|(n, r)| row(n, r)).collect::<Vec<_>>(),
            "total": row("total", &total),
        });
        format!("{v}\n")
    }
}

/// The native system call number of `name` (unknown names last).
fn number(name: &str) -> i32 {
    libseccomp::ScmpSyscall::from_name(name).map_or(i32::MAX, i32::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(call: &str, result: Result<i64, i32>, us: u64) -> Record {
        Record::new(1, call, vec![], result, Duration::from_micros(us))
    }

    fn summary(records: &[Record]) -> Summary {
        let mut s = Summary::default();
        for r in records {
            s.add(r);
        }
        s
    }

    #[test]
    fn table_like_strace() {
        let s = summary(&[
            rec("connect", Err(libc::ENOENT), 20),
            rec("connect", Err(libc::EINPROGRESS), 58),
            rec("connect", Ok(0), 0),
            rec("socket", Ok(3), 14),
            rec("socket", Ok(4), 16),
            rec("socket", Ok(5), 14),
            rec("sendto", Ok(79), 12),
            rec("setsockopt", Ok(0), 0),
        ]);
        assert_eq!(
            s.table(SortBy::Time),
            "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 58.21    0.000078          26         3         2 connect
 32.84    0.000044          14         3           socket
  8.96    0.000012          12         1           sendto
  0.00    0.000000           0         1           setsockopt
------ ----------- ----------- --------- --------- ----------------
100.00    0.000134          16         8         2 total
"
        );
        // Ties keep system call number order: socket (41) before connect (42).
        let by_calls = s.table(SortBy::Calls);
        let names: Vec<&str> = by_calls
            .lines()
            .skip(2)
            .take(4)
            .map(|l| l.rsplit(' ').next().unwrap())
            .collect();
        assert_eq!(names, ["socket", "connect", "sendto", "setsockopt"]);
        assert_eq!(Summary::default().table(SortBy::Time), "");
    }

    #[test]
    fn wide_numbers_widen_columns() {
        let many: Vec<Record> = (0..3)
            .map(|_| rec("a_call_with_a_long_name", Ok(0), 12_345_678_901))
            .collect();
        let t = summary(&many).table(SortBy::Time);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0].len(),
            lines[2].len() - "a_call_with_a_long_name".len() + "syscall".len()
        );
        assert!(lines[2].contains(" 12345678901 "), "{t}");
        assert!(lines[2].starts_with("100.00 37037.036703 "), "{t}");
        assert!(lines[1].ends_with(&"-".repeat(24)), "{t}");
    }

    #[test]
    fn json_totals() {
        let s = summary(&[rec("bind", Err(libc::EADDRINUSE), 5), rec("bind", Ok(0), 7)]);
        let v: serde_json::Value = serde_json::from_str(&s.json(SortBy::Time)).unwrap();
        assert_eq!(v["summary"][0]["syscall"], "bind");
        assert_eq!(v["summary"][0]["calls"], 2);
        assert_eq!(v["total"]["errors"], 1);
        assert_eq!(v["total"]["usecs"], 12);
    }

    #[test]
    fn sort_names() {
        assert_eq!(SortBy::parse("calls"), Ok(SortBy::Calls));
        assert_eq!(SortBy::parse("syscall"), Ok(SortBy::Name));
        assert!(SortBy::parse("bogus").is_err());
    }
}
