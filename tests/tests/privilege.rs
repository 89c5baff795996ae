//! Acceptance test of issue 12, the privilege rule: a program gets through
//! Joyride exactly what it could get without it.
//!
//! A differential test. `tests/programs/privprobe.py` performs a list of
//! cases (AF_UNIX connects, sends and binds against root's servers and
//! directories, raw and packet sockets, privileged ports, capability-gated
//! socket options) and prints one JSON line per case: whether it worked,
//! the errno, and what it observed (socket file owner and mode, the
//! credentials the server saw). The probe runs in a matrix of identities ×
//! modes, and every cell must equal the same identity without Joyride: the
//! kernel is the only judge of what is expected, nothing is hard-coded but
//! a few sanity facts that keep the baseline itself honest.
//!
//! Identities, with Joyride outermost and the privilege change inside it,
//! as a user would write it (`joyride exec -- setpriv ... python3 probe`):
//!
//! | identity       | how                                                            |
//! |----------------|----------------------------------------------------------------|
//! | `nobody`       | `setpriv --reuid 65534 --regid 65534 --clear-groups`, no caps   |
//! | `nobody+bind`  | the same with only `CAP_NET_BIND_SERVICE` (ambient)             |
//! | `root`         | the test's own root                                             |
//! | `userns`       | `unshare -Ur`: root of a new user namespace, host's network ns |
//! | `userns+netns` | `unshare -Urn`: the same with its own network namespace         |
//! | `nobody/userns`, `nobody/userns+netns` | `nobody` who then runs `unshare -Ur(n)` |
//!
//! Modes: `baseline` (no Joyride, in the target namespace with the stack's
//! addresses given to the kernel on vA), `exec` (`joyride exec`: cases of
//! group "stack" are served by the user-space stack — reported as
//! `exec-stack` — and those of group "kernel", on loopback, by the kernel
//! sockets the supervisor makes — `exec-kernel`; group "family" holds the
//! sockets Joyride never serves: AF_UNIX, raw, packet), and `trace`
//! (`joyride trace`, which performs every call).
//!
//! `X+netns` under `joyride exec`: the program's Internet sockets are still
//! served by Joyride's stack, which lives in the target namespace A, not in
//! the program's new one. The kernel's equivalent of a socket in A held by
//! root of a child user namespace is identity `X` (the same user namespace,
//! sharing A), so the stack's cells of `X+netns` are judged against `X`'s
//! baseline: port 80 EACCES, `SO_MARK` EPERM, as for any socket of a network
//! namespace the program's user namespace does not own. Anything else would
//! let any user who may create a user namespace (`nobody/userns+netns`)
//! take port 80 and every CAP_NET_ADMIN option on the host's stack.
//! Loopback sockets are made by the supervisor in the program's own
//! namespace and are judged against `X+netns`' own baseline (port 81 works
//! there); in the baseline and under `joyride trace` the stack's address
//! does not exist in the new namespace (EADDRNOTAVAIL).
//!
//! Not compared, but shown: whether the pid the server saw in SO_PEERCRED
//! or SCM_CREDENTIALS is the program's (a supervisor that connects or sends
//! from a helper would make it the helper's; the kernel reports the pid of
//! whoever made the call, and pid-based authorisation such as polkit's
//! would then judge the helper).
//!
//! With `JOYRIDE_EXEC_ON_KERNEL=1` every mode runs without Joyride, which
//! validates the test itself: no cell may mismatch.
//!
//! `cargo test -p joyride-tests --test privilege -- --nocapture`

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use joyride_tests::exec::{ExecNet, Netns, Program, PYTHON};
use joyride_tests::{joyride, program_source, sh, TempDir};
use serde_json::Value;

/// Longest a probe run may take (each takes a few seconds at most).
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// One user the probe runs as.
struct Identity {
    /// Name in the table.
    name: &'static str,
    /// The privilege change, run inside Joyride in front of python3: these
    /// commands one after the other.
    wrap: &'static [&'static [&'static str]],
    /// Probe flags (`--lo-up` for a new network namespace).
    flags: &'static [&'static str],
}

/// nobody, with no capability at all.
const NOBODY: &[&str] = &[
    "setpriv",
    "--reuid",
    "65534",
    "--regid",
    "65534",
    "--clear-groups",
    "--inh-caps=-all",
    "--bounding-set=-all",
];

/// nobody with only CAP_NET_BIND_SERVICE (ambient, so python3 keeps it).
const NOBODY_BIND: &[&str] = &[
    "setpriv",
    "--reuid",
    "65534",
    "--regid",
    "65534",
    "--clear-groups",
    "--inh-caps=-all,+net_bind_service",
    "--ambient-caps=+net_bind_service",
    "--bounding-set=-all,+net_bind_service",
];

const USERNS: &[&str] = &["unshare", "-Ur"];
const USERNS_NETNS: &[&str] = &["unshare", "-Urn"];

const IDENTITIES: &[Identity] = &[
    Identity {
        name: "nobody",
        wrap: &[NOBODY],
        flags: &[],
    },
    Identity {
        name: "nobody+bind",
        wrap: &[NOBODY_BIND],
        flags: &[],
    },
    Identity {
        name: "root",
        wrap: &[],
        flags: &[],
    },
    Identity {
        name: "userns",
        wrap: &[USERNS],
        flags: &[],
    },
    Identity {
        name: "userns+netns",
        wrap: &[USERNS_NETNS],
        flags: &["--lo-up"],
    },
    Identity {
        name: "nobody/userns",
        wrap: &[NOBODY, USERNS],
        flags: &[],
    },
    Identity {
        name: "nobody/userns+netns",
        wrap: &[NOBODY, USERNS_NETNS],
        flags: &["--lo-up"],
    },
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Baseline,
    Exec,
    Trace,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Baseline => "baseline",
            Mode::Exec => "exec",
            Mode::Trace => "trace",
        }
    }

    /// The column of a case of `group` in this mode.
    fn column(self, group: &str) -> String {
        match (self, group) {
            (Mode::Exec, "stack" | "kernel") => format!("exec-{group}"),
            _ => self.name().to_owned(),
        }
    }
}

/// What one probe run printed: the cases by name, in order, and how it ended.
struct Run {
    cases: Vec<(String, Value)>,
    /// `None` when it exited 0, else the status and its stderr.
    failure: Option<String>,
}

impl Run {
    fn get(&self, case: &str) -> Option<&Value> {
        self.cases.iter().find(|(c, _)| c == case).map(|(_, v)| v)
    }
}

/// The test's fixture: the namespaces, the root-owned AF_UNIX servers, and
/// the probe where every identity can read it.
struct Bench {
    net: ExecNet,
    dir: TempDir,
    probe: std::path::PathBuf,
    _server: Program,
}

impl Bench {
    fn new() -> Bench {
        let net = ExecNet::new();
        let dir = TempDir::new();
        // A copy in the world-readable temporary directory: the checkout
        // may sit where `nobody` cannot read.
        let probe = dir.path("privprobe.py");
        std::fs::copy(program_source("privprobe.py"), &probe).expect("copy the probe");
        sh(&["chmod", "0644", s(&probe)]);
        let mut server = Program::spawn(
            {
                let mut c = Command::new(PYTHON);
                c.arg("-u").arg(&probe).arg("serve").arg(&dir.0);
                c
            },
            Stdio::null(),
        );
        server.wait_stdout("listening", Duration::from_secs(20));
        Bench {
            net,
            dir,
            probe,
            _server: server,
        }
    }

    /// Gives vA the stack's addresses in the kernel (`add`) or takes them
    /// away again, for the baseline; kernel mode has them already.
    fn kernel_addresses(&self, add: bool) {
        let n = &self.net;
        if n.kernel {
            return;
        }
        let ns = n.a_ns.as_str();
        let v6 = format!("net.ipv6.conf.{}.disable_ipv6={}", n.a_dev, if add { 0 } else { 1 });
        if add {
            sh(&["ip", "netns", "exec", ns, "sysctl", "-qw", &v6]);
        }
        for addr in [format!("{}/24", n.ip), format!("{}/64", n.ip6)] {
            let verb = if add { "add" } else { "del" };
            let mut cmd = vec!["ip", "-n", ns, "addr", verb, &addr, "dev", &n.a_dev];
            if add {
                cmd.push("nodad");
            }
            sh(&cmd);
        }
        if !add {
            sh(&["ip", "netns", "exec", ns, "sysctl", "-qw", &v6]);
        }
    }

    /// Runs the probe as `who` in `mode`.
    fn run(&self, who: &Identity, mode: Mode) -> Run {
        let tag = format!("{}.{}", who.name, mode.name()).replace(['+', '/'], "_");
        let mut argv: Vec<OsString> = who.wrap.iter().flat_map(|c| c.iter()).map(OsString::from).collect();
        argv.push(PYTHON.into());
        argv.push("-u".into());
        argv.push(self.probe.clone().into());
        argv.push("probe".into());
        for (k, v) in [
            ("--dir", s(&self.dir.0)),
            ("--tag", &tag),
            ("--stack", &self.net.ip),
            ("--stack6", &self.net.ip6),
        ] {
            argv.push(k.into());
            argv.push(v.into());
        }
        argv.extend(who.flags.iter().map(OsString::from));
        let mut cmd = match mode {
            Mode::Baseline => self.net.target(&argv[0]),
            Mode::Exec => self.net.under_joyride(&argv[0]),
            Mode::Trace if self.net.kernel => self.net.target(&argv[0]),
            Mode::Trace => {
                let mut c = self.net.target(joyride());
                c.args(["trace", "-o"])
                    .arg(self.dir.path(&format!("{tag}.trace")))
                    .arg("--");
                c.arg(&argv[0]);
                c
            }
        };
        cmd.args(&argv[1..]);
        let mut p = Program::spawn(cmd, Stdio::null());
        let ran = p.wait_timeout(RUN_LIMIT).unwrap_or_else(|| p.kill_and_collect());
        let mut cases = Vec::new();
        for line in ran.out().lines().filter(|l| l.starts_with('{')) {
            if let Ok(v) = serde_json::from_str::<Value>(line) {
                if let Some(c) = v["case"].as_str() {
                    cases.push((c.to_owned(), v));
                }
            }
        }
        let failure = (!ran.status.success()).then(|| {
            let err: Vec<&str> = ran.stderr.lines().filter(|l| !l.starts_with("  ")).take(6).collect();
            format!("{} ({})", ran.status, err.join(" | "))
        });
        Run { cases, failure }
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A result as the table shows it: `ok` or the errno, then the facts.
fn render(v: Option<&Value>) -> String {
    let Some(Value::Object(m)) = v else {
        return "(no result)".to_owned();
    };
    let mut out = match (m.get("ok"), m.get("errno")) {
        (Some(Value::Bool(true)), _) => "ok".to_owned(),
        (_, Some(Value::String(e))) => e.clone(),
        _ => "?".to_owned(),
    };
    for (k, v) in m {
        if matches!(k.as_str(), "case" | "group" | "info" | "ok" | "errno") {
            continue;
        }
        let v = match v {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        out.push_str(&format!(" {k}={v}"));
    }
    out
}

/// The part of a result that must match: everything but `info`.
fn judged(v: Option<&Value>) -> Option<Value> {
    let mut v = v?.clone();
    if let Value::Object(m) = &mut v {
        m.remove("info");
    }
    Some(v)
}

/// One cell's outcome.
struct Cell {
    case: String,
    who: &'static str,
    column: String,
    expected: String,
    got: String,
    /// Whether the judged parts are equal.
    same: bool,
}

/// Differences Joyride keeps on purpose, each with why. A cell listed here
/// must show exactly the answer given (`got` contains it), or it fails like
/// any other; the matrix prints them apart.
struct Known {
    /// The case, or its suffix when it starts with `*`.
    case: &'static str,
    /// Identities it applies to.
    who: &'static [&'static str],
    column: &'static str,
    /// What Joyride answers instead.
    got: &'static str,
    why: &'static str,
}

const KNOWN: &[Known] = &[
    Known {
        case: "setsockopt_tcp_stack_TCP_REPAIR",
        who: &["root"],
        column: "exec-stack",
        got: "ENOPROTOOPT",
        why: "the stack has no repair mode: a caller allowed to ask is told the option does not exist (one without CAP_NET_ADMIN gets Linux's EPERM)",
    },
    Known {
        case: "*_then_lo",
        who: &["userns+netns", "nobody/userns+netns"],
        column: "exec-kernel",
        got: "set=EPERM",
        why: "before its bind the socket is the stack's, judged in the stack's network namespace where the program holds nothing; the kernel judges it in the program's own",
    },
];

fn known(case: &str, who: &str, column: &str, got: &str) -> Option<&'static Known> {
    KNOWN.iter().find(|k| {
        let case_matches = match k.case.strip_prefix('*') {
            Some(suffix) => case.ends_with(suffix),
            None => case == k.case,
        };
        case_matches && k.who.contains(&who) && k.column == column && got.contains(k.got)
    })
}

#[track_caller]
fn expect(base: &BTreeMap<&str, Run>, who: &str, case: &str, want: &str) {
    let got = render(base[who].get(case));
    let head = got.split(' ').next().unwrap_or_default();
    assert_eq!(
        head, want,
        "baseline sanity: {case} as {who} should be {want}, the kernel said {got}; the baseline is wrong \
         (identity set up wrong?)"
    );
}

#[track_caller]
fn expect_fact(base: &BTreeMap<&str, Run>, who: &str, case: &str, key: &str, want: Value) {
    let got = base[who].get(case).map(|v| v[key].clone());
    assert_eq!(
        got,
        Some(want.clone()),
        "baseline sanity: {case} as {who}: {key} should be {want} ({})",
        render(base[who].get(case))
    );
}

/// Facts about the kernel's answers that must hold, so that a broken setup
/// (an identity that kept its capabilities, a missing server) cannot make
/// the baseline — and with it every expectation — silently wrong.
fn sanity(base: &BTreeMap<&str, Run>) {
    for (who, run) in base {
        assert!(
            run.failure.is_none(),
            "baseline probe as {who} failed: {:?}",
            run.failure
        );
    }
    let n = base["root"].cases.len();
    assert!(n > 50, "the probe ran only {n} cases as root");
    for (who, run) in base {
        assert_eq!(
            run.cases.len(),
            n,
            "baseline as {who} ran {} cases, root {n}",
            run.cases.len()
        );
    }
    let ids = |v: &str| Value::from(vec![v; 4]);
    expect_fact(base, "nobody", "whoami", "Uid", ids("65534"));
    expect_fact(
        base,
        "nobody",
        "whoami",
        "CapEff",
        Value::from(vec!["0000000000000000"]),
    );
    expect_fact(base, "nobody+bind", "whoami", "Uid", ids("65534"));
    expect_fact(
        base,
        "nobody+bind",
        "whoami",
        "CapEff",
        Value::from(vec!["0000000000000400"]),
    );
    expect_fact(base, "root", "whoami", "Uid", ids("0"));
    expect_fact(base, "userns", "whoami", "Uid", ids("0"));
    for who in ["nobody", "nobody+bind"] {
        expect(base, who, "raw_tcp", "EPERM");
        expect(base, who, "packet_raw", "EPERM");
        expect(base, who, "unix_connect_0600", "EACCES");
        expect(base, who, "unix_bind_private", "EACCES");
        expect(base, who, "unix_dgram_forge_root", "EPERM");
        expect(base, who, "setsockopt_tcp_stack_SO_MARK", "EPERM");
        expect(base, who, "setsockopt_udp_kernel_IP_TRANSPARENT", "EPERM");
        expect(base, who, "setsockopt_tcp_stack_SO_DEBUG", "EACCES");
        expect(base, who, "setsockopt_tcp_kernel_SO_PRIORITY_7", "EPERM");
        expect(base, who, "setsockopt_tcp_kernel_SO_PRIORITY_6", "ok");
        expect(base, who, "unix_connect_0666", "ok");
        expect_fact(base, who, "unix_connect_0666", "seen_uid", 65534.into());
        expect_fact(base, who, "unix_connect_0666", "seen_gid", 65534.into());
        expect_fact(base, who, "unix_dgram_sendto_0666", "seen_uid", 65534.into());
        expect_fact(base, who, "unix_bind_chmod", "owner_uid", 65534.into());
        expect_fact(base, who, "unix_bind_chmod", "chmod", "ok".into());
    }
    expect(base, "nobody", "bind_tcp_80_stack", "EACCES");
    expect(base, "nobody", "bind_tcp_81_lo", "EACCES");
    expect(base, "nobody+bind", "bind_tcp_80_stack", "ok");
    expect(base, "nobody+bind", "bind_tcp_81_lo", "ok");
    for case in [
        "raw_tcp",
        "unix_connect_0600",
        "bind_tcp_80_stack",
        "setsockopt_tcp_stack_SO_MARK",
    ] {
        expect(base, "root", case, "ok");
    }
    expect(base, "userns", "bind_tcp_80_stack", "EACCES");
    expect(base, "userns", "raw_tcp", "EPERM");
    expect(base, "userns", "setsockopt_tcp_kernel_SO_MARK", "EPERM");
    expect(base, "userns+netns", "bind_tcp_81_lo", "ok");
    expect(base, "userns+netns", "raw_tcp", "ok");
    expect(base, "userns+netns", "bind_tcp_80_stack", "EADDRNOTAVAIL");
    // An unprivileged user's namespace: root there, nobody outside.
    expect_fact(base, "nobody/userns", "whoami", "Uid", ids("0"));
    expect(base, "nobody/userns", "bind_tcp_80_stack", "EACCES");
    expect(base, "nobody/userns", "raw_tcp", "EPERM");
    expect(base, "nobody/userns", "unix_connect_0600", "EACCES");
    expect(base, "nobody/userns", "unix_bind_private", "EACCES");
    expect(base, "nobody/userns", "setsockopt_tcp_stack_SO_MARK", "EPERM");
    expect_fact(base, "nobody/userns", "unix_connect_0666", "seen_uid", 65534.into());
    expect(base, "nobody/userns+netns", "bind_tcp_81_lo", "ok");
    expect(base, "nobody/userns+netns", "raw_tcp", "ok");
    expect(base, "nobody/userns+netns", "setsockopt_tcp_kernel_SO_MARK", "ok");
    for who in base.keys() {
        expect(base, who, "bind_tcp_1025_lo", "ok");
        if !who.ends_with("+netns") {
            expect(base, who, "bind_tcp_1025_stack", "ok");
        }
    }
}

/// The identity whose baseline judges `who`'s cell of `group` in `mode`:
/// on Joyride's stack a program with a network namespace of its own is
/// judged as the same user namespace without one (see the module
/// documentation). `on_joyride` is false in kernel mode, where `exec` runs
/// without Joyride.
fn judge(who: &'static str, group: &str, mode: Mode, on_joyride: bool) -> &'static str {
    match who.strip_suffix("+netns") {
        Some(shared) if on_joyride && mode == Mode::Exec && group == "stack" => shared,
        _ => who,
    }
}

fn table(rows: &[[String; 5]]) -> String {
    let mut w = [0usize; 5];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r.iter().enumerate().map(|(i, c)| format!("{c:<0$}", w[i])).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[test]
fn privilege_matrix() {
    let started = Instant::now();
    let bench = Bench::new();

    // The baseline and `joyride trace` (the kernel serves every call) run
    // with the stack's addresses on vA in the kernel; `joyride exec` with
    // vA left to the stack.
    bench.kernel_addresses(true);
    let base: BTreeMap<&str, Run> = IDENTITIES
        .iter()
        .map(|who| (who.name, bench.run(who, Mode::Baseline)))
        .collect();
    sanity(&base);
    let traced: Vec<Run> = IDENTITIES.iter().map(|who| bench.run(who, Mode::Trace)).collect();
    bench.kernel_addresses(false);
    let executed: Vec<Run> = IDENTITIES.iter().map(|who| bench.run(who, Mode::Exec)).collect();

    let mut cells: Vec<Cell> = Vec::new();
    let mut pid_notes: Vec<String> = Vec::new();
    let mut kept: Vec<String> = Vec::new();
    for (mode, runs) in [(Mode::Exec, executed), (Mode::Trace, traced)] {
        for (who, got) in IDENTITIES.iter().zip(runs) {
            if !bench.net.kernel {
                // The probe must have run under Joyride's filter, or every
                // cell would trivially equal the baseline.
                let filter = got.get("whoami").map(|v| v["info"]["Seccomp"].clone());
                let want = Value::from(vec!["2"]);
                cells.push(Cell {
                    case: "(seccomp filter)".into(),
                    who: who.name,
                    column: mode.name().into(),
                    expected: "Seccomp: 2".into(),
                    got: format!("Seccomp: {}", filter.as_ref().map(Value::to_string).unwrap_or_default()),
                    same: filter == Some(want),
                });
            }
            cells.push(Cell {
                case: "(exit status)".into(),
                who: who.name,
                column: mode.name().into(),
                expected: "0".into(),
                got: got.failure.clone().unwrap_or_else(|| "0".into()),
                same: got.failure.is_none(),
            });
            for (case, want) in &base[who.name].cases {
                let group = want["group"].as_str().unwrap_or_default();
                let judge = judge(who.name, group, mode, !bench.net.kernel);
                let want = base[judge].get(case);
                let have = got.get(case);
                let w = render(want);
                let column = mode.column(group);
                let got = render(have);
                let mut same = judged(want) == judged(have);
                if !same {
                    if let Some(k) = known(case, who.name, &column, &got) {
                        kept.push(format!("{case} as {} under {column}: {got} ({})", who.name, k.why));
                        same = true;
                    }
                }
                cells.push(Cell {
                    case: case.clone(),
                    who: who.name,
                    column,
                    expected: if judge == who.name {
                        w
                    } else {
                        format!("{w} (as {judge})")
                    },
                    got,
                    same,
                });
                let self_pid = |v: Option<&Value>| v.and_then(|v| v["info"]["seen_pid_is_self"].as_bool());
                if case != "unix_dgram_forge_pid1" && self_pid(want) == Some(true) && self_pid(have) == Some(false) {
                    pid_notes.push(format!("{case} as {} under {}", who.name, mode.column(group)));
                }
            }
        }
    }

    // The matrix: mismatches / cells per identity and column.
    let columns = ["exec", "exec-stack", "exec-kernel", "trace"];
    let mut matrix = vec![{
        let mut h = vec!["identity".to_owned()];
        h.extend(columns.iter().map(|c| c.to_string()));
        h
    }];
    for who in IDENTITIES {
        let mut row = vec![who.name.to_owned()];
        for col in columns {
            let mine: Vec<&Cell> = cells.iter().filter(|c| c.who == who.name && c.column == col).collect();
            let bad = mine.iter().filter(|c| !c.same).count();
            row.push(format!("{bad}/{} differ", mine.len()));
        }
        matrix.push(row);
    }
    let w0 = matrix.iter().map(|r| r[0].len()).max().unwrap_or(0);
    eprintln!("\nprivilege matrix (cells that differ from the kernel / cells), columns exec = the family group:");
    for r in &matrix {
        eprintln!(
            "  {:<w0$}  {}",
            r[0],
            r[1..].iter().map(|c| format!("{c:<16}")).collect::<String>()
        );
    }

    let bad: Vec<&Cell> = cells.iter().filter(|c| !c.same).collect();
    if !kept.is_empty() {
        eprintln!(
            "\nknown differences (SECURITY.md, README), {} cells:\n  {}",
            kept.len(),
            kept.join("\n  ")
        );
    }
    if !pid_notes.is_empty() {
        eprintln!(
            "\nnote (not judged): the server saw another pid than the program's in {} cells:\n  {}",
            pid_notes.len(),
            pid_notes.join("\n  ")
        );
    }
    eprintln!(
        "\n{} cells judged in {:.1} s, {} differ",
        cells.len(),
        started.elapsed().as_secs_f64(),
        bad.len()
    );
    if !bad.is_empty() {
        let mut rows = vec![[
            "case".to_owned(),
            "identity".to_owned(),
            "mode".to_owned(),
            "expected (kernel)".to_owned(),
            "got".to_owned(),
        ]];
        for c in &bad {
            rows.push([
                c.case.clone(),
                c.who.to_owned(),
                c.column.clone(),
                c.expected.clone(),
                c.got.clone(),
            ]);
        }
        let t = table(&rows);
        eprintln!("\n{t}");
        panic!(
            "{} of {} cells differ from the same program without Joyride (table above)",
            bad.len(),
            cells.len()
        );
    }
}

/// A program that changes its own power while it runs — `unshare` of its
/// network and user namespaces, `setgroups` — is judged with its new power
/// by the very next call: the supervisor keeps a thread's credentials
/// between calls only while its ids and capabilities show no change and no
/// credential call came (`Ctx::caller_creds`). Each mode of
/// `credchange.py` runs on the kernel, under `joyride trace` and under
/// `joyride exec` (whose loopback sockets are made with the program's
/// power), and every step must agree.
#[test]
fn credentials_changed_mid_run_are_seen() {
    let ns = Netns::new();
    let probe = program_source("credchange.py");
    let groups_as: &[&str] = &[
        "setpriv",
        "--reuid",
        "65534",
        "--regid",
        "65534",
        "--groups",
        "4242,4243",
        "--inh-caps=+setgid",
        "--ambient-caps=+setgid",
    ];
    for (mode, wrap) in [("ns", &[][..]), ("groups", groups_as)] {
        let run = |joyride_args: &[&str]| -> Vec<String> {
            // [joyride ARGS --] [WRAP...] python3 credchange.py MODE
            let mut argv: Vec<OsString> = Vec::new();
            if !joyride_args.is_empty() {
                argv.push(joyride().into());
                argv.extend(joyride_args.iter().map(OsString::from));
                argv.push("--".into());
            }
            argv.extend(wrap.iter().map(OsString::from));
            argv.push(PYTHON.into());
            let mut c = ns.cmd(&argv[0]);
            c.args(&argv[1..]);
            c.arg(&probe).arg(mode).stdin(Stdio::null());
            let out = c.output().expect("run credchange.py");
            assert!(
                out.status.success(),
                "credchange.py {mode} {joyride_args:?}: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned)
                .collect()
        };
        let kernel = run(&[]);
        // The run must show what it is there to show: the changes took.
        let step = |lines: &[String], name: &str| -> String {
            lines
                .iter()
                .find(|l| l.contains(&format!("\"step\": \"{name}\"")))
                .cloned()
                .unwrap_or_default()
        };
        match mode {
            "ns" => {
                assert!(step(&kernel, "connect_before").contains("\"ok\""), "{kernel:?}");
                assert!(
                    step(&kernel, "connect_after_unshare_net").contains("ENETUNREACH"),
                    "{kernel:?}"
                );
                assert!(
                    step(&kernel, "bind80_after_unshare_user").contains("EACCES"),
                    "{kernel:?}"
                );
            }
            _ => {
                assert!(
                    step(&kernel, "peer_groups_before").contains("[4242, 4243]"),
                    "{kernel:?}"
                );
                assert!(
                    step(&kernel, "peer_groups_after").contains("\"groups\": []"),
                    "{kernel:?}"
                );
            }
        }
        for joyride_args in [&["trace", "-o", "/dev/null"][..], &["exec"][..]] {
            let got = run(joyride_args);
            assert_eq!(
                got, kernel,
                "credchange.py {mode} under joyride {joyride_args:?} differs from the kernel"
            );
        }
    }
}
