//! Issue 12's PostgreSQL acceptance: PostgreSQL 15 (Debian's) started as
//! user `postgres` under `joyride exec` with its Unix-domain socket in its
//! default directory and default settings, and `pgbench` from a kernel peer
//! runs without errors.
//!
//! The server is `joyride exec -- runuser -u postgres -- sh -c SCRIPT`,
//! where the script (run as postgres, inside the Joyride tree) starts
//! `postgres -D DATA -p PORT -c listen_addresses=IP`, waits for it and runs
//! `psql -c 'select 1'` over the Unix socket with `peer` authentication,
//! which checks `SO_PEERCRED` end to end: a connection made with root's
//! identity is refused ("Peer authentication failed"). The cluster is the
//! test's own (`initdb` into a temp dir, a test port): Debian's default
//! cluster (5432, /var/lib/postgresql/15/main) is neither used nor touched.
//!
//! Checked: the server starts and stays up; `pg_isready` answers over the
//! Unix socket (target namespace, as postgres) and over TCP from the peer
//! namespace; `/var/run/postgresql/.s.PGSQL.PORT` is a socket owned by
//! postgres with mode 0777 (PostgreSQL's default `unix_socket_permissions`);
//! the in-tree psql prints 1; `pgbench -i` then `pgbench -c 4 -j 2 -T 5`
//! from the peer namespace (the kernel's stack) finish with 0 failed
//! transactions and a tps; the server stops cleanly on SIGINT (fast
//! shutdown) and joyride exits with its status.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use joyride_tests::exec::{run, ExecNet, Program, Served};
use joyride_tests::{sh, TempDir};

/// Where Debian's postgresql-15 puts its programs.
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// PostgreSQL's default `unix_socket_directories` on Debian.
const SOCKET_DIR: &str = "/var/run/postgresql";

const STARTUP: Duration = Duration::from_secs(30);

fn pg(prog: &str) -> PathBuf {
    let p = Path::new(PG_BIN).join(prog);
    assert!(p.exists(), "{} is missing: run scripts/setup.sh", p.display());
    p
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// uid and gid of user `postgres`.
fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = sh(&["id", flag, "postgres"]);
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("id output")
    };
    (id("-u"), id("-g"))
}

/// Debian's default socket directory, made as postgresql-common's tmpfiles
/// entry makes it (`d /run/postgresql 2775 postgres postgres`) when missing
/// (no systemd here creates it at boot).
fn ensure_socket_dir(uid: u32, gid: u32) {
    let dir = Path::new(SOCKET_DIR);
    if !dir.exists() {
        std::fs::create_dir_all(dir).expect("mkdir /var/run/postgresql");
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).expect("chown");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o2775)).expect("chmod");
    }
    let m = std::fs::metadata(dir).expect("stat /var/run/postgresql");
    assert!(
        m.uid() == uid && m.mode() & 0o200 != 0,
        "{SOCKET_DIR} exists but is not writable by postgres (uid {}, mode {:o})",
        m.uid(),
        m.mode()
    );
}

/// A port in 15400..16399 whose socket and lock files are free.
fn free_port() -> u16 {
    let base = 15400 + (std::process::id() % 1000) as u16;
    (0..1000)
        .map(|i| 15400 + (base - 15400 + i) % 1000)
        .find(|p| {
            !Path::new(&format!("{SOCKET_DIR}/.s.PGSQL.{p}")).exists()
                && !Path::new(&format!("{SOCKET_DIR}/.s.PGSQL.{p}.lock")).exists()
        })
        .expect("a free port")
}

/// Kills a postmaster left running by a failed test (by the pid in its
/// `postmaster.pid`) and removes the socket and lock files it left behind
/// in the shared socket directory, if they are this run's.
struct Cleanup {
    data: PathBuf,
    port: u16,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(pid) = std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next()?.trim().parse::<i32>().ok())
        {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
        let lock = format!("{SOCKET_DIR}/.s.PGSQL.{}.lock", self.port);
        let ours = std::fs::read_to_string(&lock).is_ok_and(|t| t.contains(s(&self.data)));
        if ours {
            let _ = std::fs::remove_file(&lock);
            let _ = std::fs::remove_file(format!("{SOCKET_DIR}/.s.PGSQL.{}", self.port));
        }
    }
}

/// The script run as postgres under Joyride: the server in the background,
/// then psql over the Unix socket once it is ready, then wait for the
/// server (its status is the script's). $1 bin dir, $2 data dir, $3 port,
/// $4 listen address, $5 socket dir.
const SERVER_SCRIPT: &str = r#"
"$1/postgres" -D "$2" -p "$3" -c "listen_addresses=$4" &
pg=$!
n=0
until "$1/pg_isready" -q -h "$5" -p "$3"; do
    kill -0 "$pg" 2>/dev/null || break
    n=$((n + 1)); [ "$n" -gt 250 ] && break
    sleep 0.1
done
out=$("$1/psql" -X -At -h "$5" -p "$3" -U postgres -d postgres -c 'select 1' 2>&1)
echo "in-tree psql: rc=$? out=[$out]"
wait "$pg"
"#;

fn pgbench_number(out: &str, prefix: &str) -> Option<f64> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(prefix))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// PostgreSQL as postgres under `joyride exec`, Unix socket in its default
/// directory, pgbench from a kernel peer.
#[test]
fn postgres_under_joyride_serves_pgbench_from_kernel_peer() {
    let net = ExecNet::new();
    let (uid, gid) = postgres_ids();
    ensure_socket_dir(uid, gid);
    let dir = TempDir::new();
    let data = dir.path("data");
    std::fs::create_dir(&data).expect("mkdir data");
    std::os::unix::fs::chown(&data, Some(uid), Some(gid)).expect("chown data");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).expect("chmod data");
    let port = free_port();
    let _cleanup = Cleanup {
        data: data.clone(),
        port,
    };

    // initdb on the kernel, outside Joyride: only the server is under test.
    // peer for local connections (so the in-tree psql proves SO_PEERCRED);
    // over TCP only the kernel peer's address, trusted (added below).
    let mut initdb = Command::new("runuser");
    initdb
        .args(["-u", "postgres", "--"])
        .arg(pg("initdb"))
        .args([
            "-D",
            s(&data),
            "-U",
            "postgres",
            "--auth-local=peer",
            "--auth-host=reject",
            "--no-sync",
        ])
        .current_dir("/");
    run(initdb, Duration::from_secs(60)).assert_ok("initdb");
    let hba = data.join("pg_hba.conf");
    let mut rules = std::fs::read_to_string(&hba).expect("pg_hba.conf");
    rules.push_str(&format!(
        "# joyride test: the kernel peer\nhost all all {}/32 trust\n",
        net.peer_ip
    ));
    std::fs::write(&hba, rules).expect("write pg_hba.conf");

    let mut c = net.under_joyride("runuser");
    c.args(["-u", "postgres", "--", "sh", "-c", SERVER_SCRIPT, "sh", PG_BIN])
        .args([s(&data), &port.to_string(), &net.ip, SOCKET_DIR])
        .current_dir("/");
    let mut server = Program::spawn(c, Stdio::null());
    let started = Instant::now();

    let mut problems: Vec<String> = Vec::new();

    // Ready over the Unix socket (target namespace, as postgres, no Joyride).
    wait_ready(&mut server, "pg_isready over the Unix socket", || {
        let mut c = net.target("runuser");
        c.args(["-u", "postgres", "--"])
            .arg(pg("pg_isready"))
            .args(["-h", SOCKET_DIR, "-p", &port.to_string()]);
        c
    });
    // Ready over TCP from the kernel peer.
    wait_ready(&mut server, "pg_isready over TCP from the peer", || {
        let mut c = net.peer(pg("pg_isready"));
        c.args(["-h", &net.ip, "-p", &port.to_string(), "-U", "postgres"]);
        c
    });
    eprintln!("postgres ready after {:?} (port {port})", started.elapsed());

    // The socket file: PostgreSQL's own, with its default permissions.
    let sock = format!("{SOCKET_DIR}/.s.PGSQL.{port}");
    match std::fs::symlink_metadata(&sock) {
        Ok(m) => {
            eprintln!(
                "{sock}: uid {} gid {} mode {:o} socket {}",
                m.uid(),
                m.gid(),
                m.mode() & 0o7777,
                m.file_type().is_socket()
            );
            if !m.file_type().is_socket() || m.uid() != uid || m.mode() & 0o777 != 0o777 {
                problems.push(format!(
                    "{sock} should be a socket owned by postgres (uid {uid}) with mode 0777; it has uid {} gid {} \
                     mode {:o} (socket: {})",
                    m.uid(),
                    m.gid(),
                    m.mode() & 0o7777,
                    m.file_type().is_socket()
                ));
            }
        }
        Err(e) => problems.push(format!("{sock}: {e}")),
    }

    // psql over the Unix socket from inside the Joyride tree (peer auth).
    let deadline = Instant::now() + STARTUP;
    while !String::from_utf8_lossy(&server.stdout_so_far()).contains("in-tree psql:") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = String::from_utf8_lossy(&server.stdout_so_far()).into_owned();
    let line = out.lines().find(|l| l.starts_with("in-tree psql:")).unwrap_or("");
    eprintln!("{line}");
    if !line.contains("rc=0 out=[1]") {
        problems.push(format!(
            "psql -c 'select 1' over the Unix socket as postgres inside the Joyride tree: {:?}",
            if line.is_empty() { "no result" } else { line }
        ));
    }

    // pgbench from the kernel peer, over TCP to the stack.
    let p = port.to_string();
    let mut init = net.peer(pg("pgbench"));
    init.args(["-i", "-q", "-h", &net.ip, "-p", &p, "-U", "postgres", "postgres"]);
    let ran = run(init, Duration::from_secs(60));
    server.assert_running("postgres (after pgbench -i)");
    ran.assert_ok("pgbench -i from the kernel peer");
    let mut bench = net.peer(pg("pgbench"));
    bench.args([
        "-c", "4", "-j", "2", "-T", "5", "-h", &net.ip, "-p", &p, "-U", "postgres", "postgres",
    ]);
    let ran = run(bench, Duration::from_secs(60));
    server.assert_running("postgres (after pgbench)");
    ran.assert_ok("pgbench -c 4 -j 2 -T 5 from the kernel peer");
    let out = ran.out();
    eprintln!("{out}");
    let failed = pgbench_number(&out, "number of failed transactions:");
    let processed = pgbench_number(&out, "number of transactions actually processed:");
    let tps = pgbench_number(&out, "tps =");
    if failed != Some(0.0) || processed.unwrap_or(0.0) <= 0.0 || tps.unwrap_or(0.0) <= 0.0 {
        problems.push(format!(
            "pgbench: failed {failed:?}, processed {processed:?}, tps {tps:?}:\n{out}"
        ));
    }

    // Fast shutdown (SIGINT to the postmaster); joyride passes its status on.
    let pid = std::fs::read_to_string(data.join("postmaster.pid"))
        .ok()
        .and_then(|t| t.lines().next()?.trim().parse::<u32>().ok())
        .expect("postmaster.pid");
    let _ = Command::new("kill").args(["-INT", &pid.to_string()]).status();
    let ran = match server.wait_timeout(STARTUP) {
        Some(ran) => ran,
        None => {
            let ran = server.kill_and_collect();
            panic!(
                "postgres did not stop within {STARTUP:?} of SIGINT:\n{}",
                ran.describe()
            );
        }
    };
    if !ran.status.success() {
        problems.push(format!("the server run ended with {}:\n{}", ran.status, ran.describe()));
    }
    if Path::new(&sock).exists() {
        problems.push(format!("{sock} is still there after the server stopped"));
    }
    if !net.kernel {
        if let Err(e) = joyride_tests::exec::check_stats(&ran.stderr, &[Served::PassiveOpens]) {
            problems.push(format!("--stats: {e}"));
        }
    }
    assert!(
        problems.is_empty(),
        "PostgreSQL under joyride exec:\n- {}\n\nserver output:\n{}",
        problems.join("\n- "),
        ran.describe()
    );
}

/// Waits until `probe()` exits 0 (checking every 100 ms, `STARTUP` at most);
/// panics with the server's output if it ends first or never gets ready.
#[track_caller]
fn wait_ready(server: &mut Program, what: &str, probe: impl Fn() -> Command) {
    let deadline = Instant::now() + STARTUP;
    loop {
        if let Some(status) = server.child.try_wait().expect("try_wait") {
            let ran = server.collect(status);
            panic!(
                "postgres under joyride exec ended before {what} answered:\n{}",
                ran.describe()
            );
        }
        let out = probe().stdin(Stdio::null()).output().expect("run pg_isready");
        if out.status.success() {
            return;
        }
        if Instant::now() > deadline {
            let ran = server.kill_and_collect();
            panic!(
                "{what}: not ready after {STARTUP:?} ({}):\n{}",
                String::from_utf8_lossy(&out.stdout).trim(),
                ran.describe()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
