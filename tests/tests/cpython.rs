//! CPython's own socket tests as judges: `test_socket` and `test_selectors`
//! (the interpreter's `test` package, Debian's `libpython3.11-testsuite`)
//! run once on the kernel and once under `joyride exec`, test by test, and
//! the outcomes compared. Every test that passes on the kernel must pass
//! under Joyride, and none may hang or crash there; the tests that do not
//! pass on the kernel (skipped for a missing feature, say) are only counted.
//!
//! Each side runs `tests/programs/pysuite.py` in a network namespace of its
//! own (only `lo` up; `/etc/resolv.conf` names 127.0.0.1, so that the
//! suite's name lookups fail at once instead of waiting on a resolver that
//! cannot be reached, and both sides see the same failure): the runner
//! records `start ID` / `end ID OUTCOME SECONDS` per test and ends itself
//! past a per-test limit (faulthandler dumps every thread first). The
//! harness notes the test it stopped in as a hang, or a crash when the
//! process died without the dump, and starts the runner again past every
//! test already recorded; a cap on the restarts and a deadline on the whole
//! side turn a broken build into a failure, not an endless run.
//!
//! `subset_loopback_*` run a representative part of the suites (the
//! [`SUBSET`] classes) in the normal `cargo test`; `full_loopback_*` run the
//! whole of both (`--ignored`). `*_kernel` leave loopback to the kernel, as
//! `joyride exec` does by default; `*_stack` serve it with the user-space
//! stack (`joyride exec --loopback stack`). Either way the `--stats` block
//! must show who served it. Counts go to standard error, uncaptured, in every
//! case; each side's runner output, stderr and a full report are kept in
//! `target/tmp/cpython/`.
//!
//! With `JOYRIDE_EXEC_ON_KERNEL=1` the side "under Joyride" runs on the
//! kernel too: the kernel is compared with itself, which validates the
//! harness (the same suite on the same stack must agree) without `joyride`.

use std::collections::HashMap;
use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use joyride_tests::exec::{kernel_mode, require_exec, Netns, Program, Stats, PYTHON};
use joyride_tests::{joyride, program_source};

/// The modules of the interpreter's `test` package that judge us.
const MODULES: &[&str] = &["test_socket", "test_selectors"];

/// Tests left out everywhere: the machine has no vsock, and those tests
/// hang on the kernel too.
const EXCLUDE: &[&str] = &["*VSOCK*"];

/// The bounded run's classes: the module's API checks, TCP and UDP over
/// IPv4 and IPv6 (blocking, non-blocking, timeouts, close, `sendmsg` /
/// `recvmsg` with ancillary data, file objects, `sendfile`, signals during
/// calls), `create_connection` / `create_server`, and the selectors over
/// epoll, poll and select (`DefaultSelectorTestCase` is epoll again). About
/// 25 s on the kernel; `NetworkConnectionBehaviourTest` (6 s of timeouts)
/// and the other file-object variants are left to the full run.
const SUBSET: &[&str] = &[
    "test.test_socket.GeneralModuleTests.*",
    "test.test_socket.BasicTCPTest.*",
    "test.test_socket.BasicTCPTest2.*",
    "test.test_socket.BasicUDPTest.*",
    "test.test_socket.TCPCloserTest.*",
    "test.test_socket.TCPTimeoutTest.*",
    "test.test_socket.UDPTimeoutTest.*",
    "test.test_socket.NonBlockingTCPTests.*",
    "test.test_socket.NetworkConnectionNoServer.*",
    "test.test_socket.NetworkConnectionAttributesTest.*",
    "test.test_socket.CreateServerTest.*",
    "test.test_socket.CreateServerFunctionalTest.*",
    "test.test_socket.ContextManagersTest.*",
    "test.test_socket.InheritanceTest.*",
    "test.test_socket.NonblockConstantTest.*",
    "test.test_socket.BufferIOTest.*",
    "test.test_socket.InterruptedRecvTimeoutTest.*",
    "test.test_socket.InterruptedSendTimeoutTest.*",
    "test.test_socket.SendmsgTCPTest.*",
    "test.test_socket.RecvmsgTCPTest.*",
    "test.test_socket.RecvmsgIntoTCPTest.*",
    "test.test_socket.SendmsgUDPTest.*",
    "test.test_socket.RecvmsgUDPTest.*",
    "test.test_socket.RecvmsgIntoUDPTest.*",
    "test.test_socket.SendmsgUDP6Test.*",
    "test.test_socket.RecvmsgUDP6Test.*",
    "test.test_socket.RecvmsgRFC3542AncillaryUDP6Test.*",
    "test.test_socket.FileObjectClassTestCase.*",
    "test.test_socket.UnbufferedFileObjectClassTestCase.*",
    "test.test_socket.SendfileUsingSendfileTest.*",
    "test.test_selectors.EpollSelectorTestCase.*",
    "test.test_selectors.PollSelectorTestCase.*",
    "test.test_selectors.SelectSelectorTestCase.*",
];

/// What to run, with the kernel's outcomes for it once measured (shared by
/// the tests of both loopback modes in this process).
struct Selection {
    /// Name for reports and the output directory.
    name: &'static str,
    /// `--include` patterns (empty: all of [`MODULES`]).
    include: &'static [&'static str],
    /// How long each side may take, and how often it may hang.
    limits: Limits,
    /// The kernel's run.
    baseline: OnceLock<SuiteRun>,
}

/// Bounds of one side's run.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// A test running longer is a hang (pysuite's `--timeout`).
    per_test: Duration,
    /// The whole side, restarts included.
    whole: Duration,
    /// Hangs and crashes after which the side gives up.
    max_restarts: usize,
}

static SUBSET_RUN: Selection = Selection {
    name: "subset",
    include: SUBSET,
    limits: Limits {
        per_test: Duration::from_secs(20),
        whole: Duration::from_secs(150),
        max_restarts: 5,
    },
    baseline: OnceLock::new(),
};

static FULL_RUN: Selection = Selection {
    name: "full",
    include: &[],
    limits: Limits {
        per_test: Duration::from_secs(20),
        whole: Duration::from_secs(1200),
        max_restarts: 40,
    },
    baseline: OnceLock::new(),
};

/// Who serves loopback under Joyride.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loopback {
    /// The kernel (`joyride exec`'s default).
    Kernel,
    /// The user-space stack (`joyride exec --loopback stack`).
    Stack,
}

impl Loopback {
    /// `joyride exec` options for this mode.
    fn args(self) -> &'static [&'static str] {
        match self {
            Loopback::Kernel => &[],
            Loopback::Stack => &["--loopback", "stack"],
        }
    }

    /// Checks the counters summed over a side's runs: the mode must have
    /// served what the suite did (a flag that is silently ignored would
    /// otherwise pass with everything on the kernel).
    fn check_stats(self, stats: &Stats) -> Result<(), String> {
        let ok = match self {
            Loopback::Kernel => stats.get("sockets_kernel") > 0,
            Loopback::Stack => stats.get("tcp_active_opens") > 0 && stats.get("tcp_passive_opens") > 0,
        };
        if ok {
            Ok(())
        } else {
            let want = match self {
                Loopback::Kernel => "sockets_kernel > 0 (loopback handed to the kernel)",
                Loopback::Stack => "tcp_active_opens > 0 and tcp_passive_opens > 0 (loopback TCP served by the stack)",
            };
            let mut have: Vec<_> = stats.0.iter().collect();
            have.sort();
            Err(format!("--stats summed over the runs lacks {want}: {have:?}"))
        }
    }
}

impl fmt::Display for Loopback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Loopback::Kernel => "kernel",
            Loopback::Stack => "stack",
        })
    }
}

/// The outcome of one test: pysuite's, or the harness's own for a test
/// that did not end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Outcome {
    Ok,
    Skip,
    Fail,
    Error,
    /// An expected failure (`@expectedFailure`) that failed.
    Xfail,
    /// An expected failure that passed.
    Xpass,
    /// Still running at the per-test limit (or at the side's deadline).
    Hang,
    /// The runner died in the test without faulthandler's timeout dump.
    Crash,
    /// Never run: the side gave up first.
    Missing,
}

impl Outcome {
    const ALL: [Outcome; 9] = [
        Outcome::Ok,
        Outcome::Skip,
        Outcome::Fail,
        Outcome::Error,
        Outcome::Xfail,
        Outcome::Xpass,
        Outcome::Hang,
        Outcome::Crash,
        Outcome::Missing,
    ];

    /// pysuite's word for it.
    fn parse(word: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.to_string() == word)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Ok => "ok",
            Outcome::Skip => "skip",
            Outcome::Fail => "fail",
            Outcome::Error => "error",
            Outcome::Xfail => "xfail",
            Outcome::Xpass => "xpass",
            Outcome::Hang => "hang",
            Outcome::Crash => "crash",
            Outcome::Missing => "missing",
        })
    }
}

/// One test's record.
#[derive(Debug, Clone)]
struct TestResult {
    outcome: Outcome,
    /// How long it ran (for a hang: until the runner stopped).
    secs: f64,
    /// What the runner wrote to stderr while the test was current.
    stderr: String,
}

/// One side's outcomes.
#[derive(Debug, Default)]
struct SuiteRun {
    /// What ran: "kernel", "joyride exec", "joyride exec --loopback stack".
    label: String,
    /// Test ids in the order they ran.
    order: Vec<String>,
    results: HashMap<String, TestResult>,
    /// Problems of the side as a whole: a runner that failed before its
    /// first test, the restart cap, the deadline, `--stats` lacking.
    problems: Vec<String>,
    /// Runner processes started.
    runs: usize,
    elapsed: Duration,
}

impl SuiteRun {
    fn outcome(&self, id: &str) -> Outcome {
        self.results.get(id).map_or(Outcome::Missing, |r| r.outcome)
    }

    fn record(&mut self, id: &str, result: TestResult) {
        if self.results.insert(id.to_owned(), result).is_none() {
            self.order.push(id.to_owned());
        }
    }

    /// `ok 600, skip 145, ...` (the outcomes that occur, in [`Outcome`]
    /// order; `missing` counted against `expected`'s ids).
    fn counts(&self, expected: Option<&SuiteRun>) -> String {
        let mut n: HashMap<Outcome, usize> = HashMap::new();
        for r in self.results.values() {
            *n.entry(r.outcome).or_default() += 1;
        }
        if let Some(k) = expected {
            let missing = k.order.iter().filter(|id| !self.results.contains_key(*id)).count();
            n.insert(Outcome::Missing, missing);
        }
        Outcome::ALL
            .iter()
            .filter(|o| n.get(o).copied().unwrap_or(0) > 0 || matches!(o, Outcome::Ok | Outcome::Skip))
            .map(|o| format!("{o} {}", n.get(o).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn summary(&self, expected: Option<&SuiteRun>) -> String {
        format!(
            "{}: {} tests: {} ({:.1} s, {} run{})",
            self.label,
            self.results.len(),
            self.counts(expected),
            self.elapsed.as_secs_f64(),
            self.runs,
            if self.runs == 1 { "" } else { "s" }
        )
    }
}

/// Where a side runs: plain Python, or under `joyride exec ARGS`.
#[derive(Debug, Clone, Copy)]
enum Under {
    Kernel,
    Joyride(Loopback),
}

/// A network namespace with only `lo` up and a resolver on 127.0.0.1 (see
/// the module documentation); removed on drop with what runs in it.
struct Sandbox {
    ns: Netns,
}

impl Sandbox {
    fn new() -> Sandbox {
        let ns = Netns::new();
        let etc = Sandbox::etc(&ns.0);
        std::fs::create_dir_all(&etc).expect("/etc/netns/NS");
        std::fs::write(etc.join("resolv.conf"), "nameserver 127.0.0.1\n").expect("write resolv.conf");
        Sandbox { ns }
    }

    /// `/etc/netns/NS`: files `ip netns exec NS` puts over /etc's.
    fn etc(ns: &str) -> PathBuf {
        Path::new("/etc/netns").join(ns)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(Sandbox::etc(&self.ns.0));
    }
}

/// The runner's record of one test.
#[derive(Debug, PartialEq)]
enum Line<'a> {
    Start(&'a str),
    End(&'a str, Outcome, f64),
}

/// Parses pysuite's `--out` lines; panics on a line it does not know (the
/// runner and the harness disagree).
fn parse_out(text: &str) -> Vec<Line<'_>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            match w.as_slice() {
                ["start", id] => Line::Start(id),
                ["end", id, outcome, secs] => Line::End(
                    id,
                    Outcome::parse(outcome).unwrap_or_else(|| panic!("unknown outcome in {l:?}")),
                    secs.parse().unwrap_or_else(|_| panic!("bad seconds in {l:?}")),
                ),
                _ => panic!("unknown pysuite line {l:?}"),
            }
        })
        .collect()
}

/// Splits a runner's stderr at pysuite's `--mark-stderr` lines: what came
/// before the first test, and each test's part (marker line left out).
fn split_stderr(stderr: &str) -> (String, HashMap<String, String>) {
    let mut before = String::new();
    let mut parts: HashMap<String, String> = HashMap::new();
    let mut current: Option<String> = None;
    for line in stderr.split_inclusive('\n') {
        if let Some(id) = line.strip_prefix("pysuite: start ") {
            let id = id.trim().to_owned();
            parts.entry(id.clone()).or_default();
            current = Some(id);
            continue;
        }
        match &current {
            Some(id) => parts.get_mut(id).expect("part").push_str(line),
            None => before.push_str(line),
        }
    }
    (before, parts)
}

/// The start and end of `s` when it is long: `head` bytes, an elision note,
/// `tail` bytes.
fn excerpt(s: &str, head: usize, tail: usize) -> String {
    let s = s.trim_end();
    if s.len() <= head + tail {
        return s.to_owned();
    }
    let mut h = head;
    while !s.is_char_boundary(h) {
        h -= 1;
    }
    let mut t = s.len() - tail;
    while !s.is_char_boundary(t) {
        t += 1;
    }
    format!("{}\n[... {} bytes ...]\n{}", &s[..h], t - h, &s[t..])
}

/// Runs `sel` on one side until every test has ended, hung or crashed (see
/// the module documentation), keeping the runner's files in `dir`.
fn run_side(sel: &Selection, under: Under, dir: &Path) -> SuiteRun {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let label = match under {
        Under::Kernel => "kernel".to_owned(),
        Under::Joyride(lo) => ["joyride exec"]
            .iter()
            .chain(lo.args())
            .copied()
            .collect::<Vec<_>>()
            .join(" "),
    };
    let mut r = SideRunner {
        sel,
        under,
        sandbox: Sandbox::new(),
        out_file: dir.join("out"),
        skip_file: dir.join("skip"),
        err_file: dir.join("stderr"),
        cwd: dir.join("cwd"),
        deadline: Instant::now() + sel.limits.whole,
        stats: None,
        restarts: 0,
        side: SuiteRun {
            label,
            ..SuiteRun::default()
        },
    };
    std::fs::create_dir_all(&r.cwd).expect("the runner's directory");
    let started = Instant::now();
    while r.run_once() {}
    let mut side = r.side;
    side.elapsed = started.elapsed();
    if let (Under::Joyride(lo), false) = (under, side.results.is_empty()) {
        match &r.stats {
            None => side.problems.push("no run printed a `joyride stats:` block".to_owned()),
            Some(stats) => side.problems.extend(lo.check_stats(stats).err()),
        }
    }
    side
}

/// The state of one side's run between its runner processes.
struct SideRunner<'a> {
    sel: &'a Selection,
    under: Under,
    sandbox: Sandbox,
    /// pysuite's `--out` (appended to by every runner), `--skip-file`, and
    /// every runner's stderr.
    out_file: PathBuf,
    skip_file: PathBuf,
    err_file: PathBuf,
    /// The runner's working directory, where the tests write their files
    /// (`@test_PID_tmp...`).
    cwd: PathBuf,
    deadline: Instant,
    /// `--stats` counters summed over the runners that printed them.
    stats: Option<Stats>,
    /// Runners that stopped in a test.
    restarts: usize,
    side: SuiteRun,
}

impl SideRunner<'_> {
    /// The runner's command, past every test already recorded.
    fn command(&self) -> Command {
        let mut cmd = match self.under {
            Under::Kernel => self.sandbox.ns.cmd(PYTHON),
            Under::Joyride(lo) => {
                let mut c = self.sandbox.ns.cmd(joyride());
                c.args(["exec", "--stats"]).args(lo.args()).arg("--").arg(PYTHON);
                c
            }
        };
        cmd.args(["-X", "faulthandler"])
            .arg(program_source("pysuite.py"))
            .arg("--out")
            .arg(&self.out_file)
            .arg("--skip-file")
            .arg(&self.skip_file)
            .args(["--timeout", &self.sel.limits.per_test.as_secs().to_string()])
            .arg("--mark-stderr");
        for pat in self.sel.include {
            cmd.args(["--include", pat]);
        }
        for pat in EXCLUDE {
            cmd.args(["--exclude", pat]);
        }
        cmd.args(MODULES).current_dir(&self.cwd);
        cmd
    }

    /// Runs one runner process and records what it did; true when another
    /// one should go on past the test it stopped in.
    fn run_once(&mut self) -> bool {
        let skip: String = self.side.order.iter().map(|id| format!("{id}\n")).collect();
        std::fs::write(&self.skip_file, skip).expect("write the skip file");
        let offset = std::fs::metadata(&self.out_file).map_or(0, |m| m.len() as usize);
        self.side.runs += 1;
        let n = self.side.runs;
        let mut p = Program::spawn(self.command(), Stdio::null());
        let (ran, killed) = match p.wait_timeout(self.deadline.saturating_duration_since(Instant::now())) {
            Some(ran) => (ran, false),
            None => (p.kill_and_collect(), true),
        };
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.err_file)
            .expect("stderr log");
        let _ = writeln!(log, "===== run {n}: {}\n{}", ran.status, ran.stderr);
        if let Some(s) = Stats::parse(&ran.stderr) {
            let sum = self.stats.get_or_insert_with(Stats::default);
            for (k, v) in s.0 {
                *sum.0.entry(k).or_default() += v;
            }
        }
        // The stats block follows the last test: keep it out of its part.
        let stderr = ran
            .stderr
            .rfind("joyride stats:")
            .map_or(&ran.stderr[..], |at| &ran.stderr[..at]);
        let (before, mut parts) = split_stderr(stderr);
        let text = std::fs::read_to_string(&self.out_file).unwrap_or_default();
        let lines = parse_out(text.get(offset..).unwrap_or_default());
        let mut running: Option<&str> = None;
        for line in &lines {
            match *line {
                Line::Start(id) => running = Some(id),
                Line::End(id, outcome, secs) => {
                    running = None;
                    let stderr = parts.remove(id).unwrap_or_default();
                    self.side.record(id, TestResult { outcome, secs, stderr });
                }
            }
        }
        let limits = self.sel.limits;
        let deadline_passed = format!("the side's deadline of {:?} passed in run {n}", limits.whole);
        let Some(stuck) = running else {
            if killed {
                self.side.problems.push(deadline_passed);
            } else if lines.is_empty() && !ran.status.success() {
                let why = excerpt(&before, 2000, 2000);
                let problem = format!("run {n} ended ({}) before its first test:\n{why}", ran.status);
                self.side.problems.push(problem);
            } else if !ran.status.success() {
                let why = excerpt(&ran.stderr, 1000, 3000);
                let problem = format!("run {n} ran its tests but ended with {}:\n{why}", ran.status);
                self.side.problems.push(problem);
            }
            return false;
        };
        let stderr = parts.remove(stuck).unwrap_or_default();
        let (outcome, secs, why) = if killed {
            (Outcome::Hang, 0.0, "(killed at the side's deadline)".to_owned())
        } else if stderr.contains("Timeout (") {
            (Outcome::Hang, limits.per_test.as_secs_f64(), String::new())
        } else {
            (Outcome::Crash, 0.0, format!("(the runner ended: {})", ran.status))
        };
        let stderr = format!("{why}\n{stderr}");
        self.side.record(stuck, TestResult { outcome, secs, stderr });
        self.restarts += 1;
        if killed {
            self.side.problems.push(deadline_passed);
            false
        } else if self.restarts >= limits.max_restarts {
            let problem = format!("gave up after {} hangs or crashes (the cap)", self.restarts);
            self.side.problems.push(problem);
            false
        } else {
            true
        }
    }
}

impl Selection {
    /// The kernel's outcomes, measured once per process; panics unless the
    /// kernel's run is sound (no side-level problem, some tests passing).
    fn baseline(&self) -> &SuiteRun {
        self.baseline.get_or_init(|| {
            let dir = work_dir(&format!("baseline-{}", self.name));
            let run = run_side(self, Under::Kernel, &dir);
            let ok = run.results.values().filter(|r| r.outcome == Outcome::Ok).count();
            assert!(
                run.problems.is_empty() && ok > 0,
                "the kernel's run of the {} selection is unsound ({ok} ok): {}\n{}",
                self.name,
                run.problems.join("\n"),
                run.summary(None)
            );
            run
        })
    }
}

/// `target/tmp/cpython/NAME`: a run's kept files.
fn work_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("cpython").join(name)
}

/// A test that passes on the kernel and not under Joyride, or hangs or
/// crashes there only.
#[derive(Debug)]
struct Difference<'a> {
    id: &'a str,
    kernel: Outcome,
    joyride: Outcome,
    secs: f64,
    stderr: &'a str,
}

/// The differences, in the kernel's order.
fn differences<'a>(kernel: &'a SuiteRun, joyride: &'a SuiteRun) -> Vec<Difference<'a>> {
    let stuck = |o: Outcome| matches!(o, Outcome::Hang | Outcome::Crash);
    kernel
        .order
        .iter()
        .filter_map(|id| {
            let (k, j) = (kernel.outcome(id), joyride.outcome(id));
            let bad = (k == Outcome::Ok && j != Outcome::Ok) || (stuck(j) && !stuck(k));
            let r = joyride.results.get(id);
            bad.then(|| Difference {
                id,
                kernel: k,
                joyride: j,
                secs: r.map_or(0.0, |r| r.secs),
                stderr: r.map_or("", |r| r.stderr.as_str()),
            })
        })
        .collect()
}

/// The report of a comparison: the problems, then each difference, the
/// first `detail` of them with their stderr; tests that never ran are
/// listed by their first few ids only (after a runner that could not start,
/// they are all of them).
fn report(kernel: &SuiteRun, joyride: &SuiteRun, diffs: &[Difference], detail: usize) -> String {
    const MISSING_SHOWN: usize = 10;
    let mut s = String::new();
    for p in &joyride.problems {
        s.push_str(&format!("problem: {p}\n"));
    }
    let (missing, ran): (Vec<&Difference>, Vec<&Difference>) =
        diffs.iter().partition(|d| d.joyride == Outcome::Missing);
    for (i, d) in ran.iter().enumerate() {
        s.push_str(&format!(
            "{}: {} on the kernel, {} under {} ({:.1} s)\n",
            d.id, d.kernel, d.joyride, joyride.label, d.secs
        ));
        if i < detail && !d.stderr.trim().is_empty() {
            for l in excerpt(d.stderr, 1000, 2000).lines() {
                s.push_str(&format!("    | {l}\n"));
            }
        }
    }
    if !missing.is_empty() {
        let first: Vec<&str> = missing.iter().take(MISSING_SHOWN).map(|d| d.id).collect();
        let more = missing.len().saturating_sub(MISSING_SHOWN);
        s.push_str(&format!(
            "{} tests ok on the kernel never ran under {}: {}{}\n",
            missing.len(),
            joyride.label,
            first.join(" "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    s.push_str(&format!(
        "{}\n{}\n",
        kernel.summary(None),
        joyride.summary(Some(kernel))
    ));
    s
}

/// Runs `sel` on the kernel and under `joyride exec` in loopback mode `lo`
/// (the kernel again under `JOYRIDE_EXEC_ON_KERNEL=1`), prints the counts
/// and panics with the differences.
fn compare(test: &str, sel: &Selection, lo: Loopback) {
    joyride_tests::require_root();
    let kernel = kernel_mode();
    if !kernel {
        require_exec();
    }
    let under = if kernel { Under::Kernel } else { Under::Joyride(lo) };
    let dir = work_dir(test);
    // The baseline (shared by both modes' tests) runs beside this side.
    let (base, mut side) = std::thread::scope(|s| {
        let base = s.spawn(|| sel.baseline());
        let side = run_side(sel, under, &dir);
        let base = base.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        (base, side)
    });
    if kernel {
        side.label = "kernel again (JOYRIDE_EXEC_ON_KERNEL=1)".to_owned();
    }
    let rerun_ok = rerun(test, sel, under, base, &mut side);
    let diffs = differences(base, &side);
    let mut full = report(base, &side, &diffs, usize::MAX);
    if !rerun_ok.is_empty() {
        full.push_str(&format!("passed when run again: {}\n", rerun_ok.join(" ")));
    }
    let report_file = dir.join("report.txt");
    std::fs::write(&report_file, &full).expect("write the report");
    let not_ok = base.results.values().filter(|r| r.outcome != Outcome::Ok).count();
    // Uncaptured, so that a passing run shows its counts too.
    let _ = writeln!(
        std::io::stderr().lock(),
        "cpython {test} (loopback {lo}): {}\n  {}\n  {} differences, {} problems; {not_ok} tests not ok on the kernel \
         ignored; passed when run again: {}; report: {}",
        base.summary(None),
        side.summary(Some(base)),
        diffs.len(),
        side.problems.len(),
        if rerun_ok.is_empty() {
            "none".to_owned()
        } else {
            rerun_ok.join(" ")
        },
        report_file.display()
    );
    assert!(
        diffs.is_empty() && side.problems.is_empty(),
        "{} of the tests that pass on the kernel do not under {} (full report: {}):\n{}",
        diffs.len(),
        side.label,
        report_file.display(),
        report(base, &side, &diffs, 30)
    );
}

/// Runs the tests that differ once more, alone, on Joyride's side, as
/// CPython's own regrtest does with `--rerun`: a few of CPython's tests race
/// their own threads (`NetworkConnectionAttributesTest.testSourceAddress`:
/// the client thread registers `cli.close` with `addCleanup`, which the
/// main thread may run, LIFO, before it waits for the client, so the
/// client's `getsockname` can meet a closed fd; a trapped call's round trip
/// widens that window). A test that passes when run again counts as
/// passed and is named in the report and the counts line; one that does
/// not stays a difference. Hangs and crashes are not run again.
fn rerun(test: &str, sel: &Selection, under: Under, base: &SuiteRun, side: &mut SuiteRun) -> Vec<String> {
    let failed: Vec<String> = differences(base, side)
        .iter()
        .filter(|d| matches!(d.joyride, Outcome::Fail | Outcome::Error))
        .map(|d| d.id.to_owned())
        .collect();
    if failed.is_empty() || failed.len() > RERUN_MAX {
        return Vec::new();
    }
    // A selection's patterns are static: these few are leaked (a rerun is
    // rare, and the test process ends soon after).
    let include: &'static [&'static str] = Box::leak(
        failed
            .iter()
            .map(|id| &*Box::leak(id.clone().into_boxed_str()))
            .collect::<Vec<&'static str>>()
            .into_boxed_slice(),
    );
    let again_sel = Selection {
        name: "rerun",
        include,
        limits: Limits {
            per_test: sel.limits.per_test,
            whole: Duration::from_secs(60),
            max_restarts: 1,
        },
        baseline: OnceLock::new(),
    };
    let again = run_side(&again_sel, under, &work_dir(&format!("{test}-rerun")));
    let mut ok = Vec::new();
    for id in failed {
        if again.outcome(&id) == Outcome::Ok {
            if let Some(r) = side.results.get_mut(&id) {
                r.outcome = Outcome::Ok;
            }
            ok.push(id);
        }
    }
    ok
}

/// At most this many differing tests are run again: more is no race.
const RERUN_MAX: usize = 5;

/// The [`SUBSET`] classes with loopback left to the kernel (the default).
#[test]
fn subset_loopback_kernel() {
    compare("subset_loopback_kernel", &SUBSET_RUN, Loopback::Kernel);
}

/// The [`SUBSET`] classes with loopback served by the user-space stack.
#[test]
fn subset_loopback_stack() {
    compare("subset_loopback_stack", &SUBSET_RUN, Loopback::Stack);
}

/// All of `test_socket` and `test_selectors`, loopback left to the kernel.
#[test]
#[ignore = "about 45 s when it passes, 20 s more per hang: cargo build -p joyride && cargo test -p joyride-tests --test cpython -- --ignored full_loopback_kernel"]
fn full_loopback_kernel() {
    compare("full_loopback_kernel", &FULL_RUN, Loopback::Kernel);
}

/// All of `test_socket` and `test_selectors`, loopback served by the stack.
#[test]
#[ignore = "about 45 s when it passes, 20 s more per hang: cargo build -p joyride && cargo test -p joyride-tests --test cpython -- --ignored full_loopback_stack"]
fn full_loopback_stack() {
    compare("full_loopback_stack", &FULL_RUN, Loopback::Stack);
}

/// The harness itself, on made-up runs: a hang, a failure and a missing
/// test are differences, a test that fails on the kernel is not, and each
/// difference carries its own stderr (so that the comparison can fail).
#[test]
fn harness_finds_differences() {
    let out = "start a.T.ok\nend a.T.ok ok 0.010\nstart a.T.bad\nend a.T.bad fail 0.020\n\
               start a.T.kfail\nend a.T.kfail error 0.001\nstart a.T.hung\n";
    let err = "banner\npysuite: start a.T.ok\npysuite: start a.T.bad\nFAIL a.T.bad\nTraceback\n\
               pysuite: start a.T.kfail\npysuite: start a.T.hung\nTimeout (0:00:20)!\nThread 0x1\n";
    let lines = parse_out(out);
    assert_eq!(lines[1], Line::End("a.T.ok", Outcome::Ok, 0.01));
    assert_eq!(lines.last(), Some(&Line::Start("a.T.hung")));
    let (before, parts) = split_stderr(err);
    assert_eq!(before, "banner\n");
    assert_eq!(parts["a.T.bad"], "FAIL a.T.bad\nTraceback\n");
    assert_eq!(parts["a.T.ok"], "");
    assert!(parts["a.T.hung"].starts_with("Timeout ("));

    let side = |pairs: &[(&str, Outcome)]| {
        let mut run = SuiteRun::default();
        for (id, o) in pairs {
            let stderr = parts.get(*id).cloned().unwrap_or_default();
            run.record(
                id,
                TestResult {
                    outcome: *o,
                    secs: 0.0,
                    stderr,
                },
            );
        }
        run
    };
    use Outcome::*;
    let kernel = side(&[
        ("a.T.ok", Ok),
        ("a.T.bad", Ok),
        ("a.T.kfail", Error),
        ("a.T.hung", Ok),
        ("a.T.gone", Ok),
        ("a.T.kskip", Skip),
    ]);
    let joyride = side(&[
        ("a.T.ok", Ok),
        ("a.T.bad", Fail),
        ("a.T.kfail", Error),
        ("a.T.hung", Hang),
        ("a.T.kskip", Crash),
    ]);
    let diffs = differences(&kernel, &joyride);
    let got: Vec<_> = diffs.iter().map(|d| (d.id, d.kernel, d.joyride)).collect();
    assert_eq!(
        got,
        [
            ("a.T.bad", Ok, Fail),
            ("a.T.hung", Ok, Hang),
            ("a.T.gone", Ok, Missing),
            ("a.T.kskip", Skip, Crash),
        ]
    );
    assert!(diffs[0].stderr.contains("FAIL a.T.bad"));
    assert!(diffs[1].stderr.contains("Timeout ("));
    assert!(differences(&kernel, &kernel).is_empty());
    assert_eq!(
        joyride.counts(Some(&kernel)),
        "ok 1, skip 0, fail 1, error 1, hang 1, crash 1, missing 1"
    );
    let text = report(&kernel, &joyride, &diffs, 1);
    assert!(text.contains("    | FAIL a.T.bad"), "{text}");
    assert!(!text.contains("    | Timeout"), "details past the first: {text}");
    assert!(
        text.contains("1 tests ok on the kernel never ran under : a.T.gone\n"),
        "{text}"
    );
}
