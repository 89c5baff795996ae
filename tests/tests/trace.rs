//! `joyride trace` against real programs and kernel peers in network
//! namespaces the tests create.

use std::process::{Command, Stdio};

use joyride_tests::{build_c, build_go, dump, find, joyride, read_trace, text, Bg, Net, TempDir};

const HELLO: &str = "hello from the kernel peer\n";

/// A TCP echo server: python3 -c ECHO_SERVER IP PORT.
const ECHO_SERVER: &str = "import socket,sys,threading
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
s.bind((sys.argv[1],int(sys.argv[2]))); s.listen(64)
def echo(c):
    with c:
        while (d:=c.recv(65536)): c.sendall(d)
while True: threading.Thread(target=echo,args=(s.accept()[0],),daemon=True).start()";

/// Runs `bin ARGS` on the plain kernel and under `joyride trace` in the
/// client namespace; returns both standard outputs and the trace file.
fn plain_and_traced(
    net: &Net,
    dir: &TempDir,
    bin: &std::path::Path,
    args: &[&str],
) -> (String, String, std::path::PathBuf) {
    let plain = net.client(bin.to_str().unwrap()).args(args).output().unwrap();
    let trace = dir.path("trace.json");
    let traced = net.traced(&trace).arg(bin).args(args).output().unwrap();
    (text(&plain).0, text(&traced).0, trace)
}

/// A Python HTTP server in the server namespace serving `hello.txt`.
fn http_server(net: &Net, dir: &TempDir, port: u16) -> Bg {
    let root = dir.path("www");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("hello.txt"), HELLO).unwrap();
    let mut cmd = net.server("python3");
    cmd.args([
        "-m",
        "http.server",
        &port.to_string(),
        "--bind",
        &net.server_ip,
        "--directory",
    ])
    .arg(&root)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let bg = Bg::spawn(cmd);
    net.wait_tcp(port);
    bg
}

#[test]
fn curl_dynamic() {
    let net = Net::new();
    let dir = TempDir::new();
    let _srv = http_server(&net, &dir, 8080);
    let trace = dir.path("trace.json");
    let url = format!("http://{}:8080/hello.txt", net.server_ip);
    let out = net.traced(&trace).args(["curl", "-sS", &url]).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "curl failed under joyride trace: {stderr}");
    assert_eq!(stdout, HELLO);
    let t = read_trace(&trace);
    let sock = find(&t, "socket", "AF_INET");
    assert!(sock.ret >= 0, "{}", dump(&t));
    let conn = find(&t, "connect", &format!("inet_addr(\"{}\")", net.server_ip));
    assert!(
        conn.ret == 0 || conn.errno.as_deref() == Some("EINPROGRESS"),
        "{}",
        dump(&t)
    );
    assert_eq!(conn.json["addr"]["port"], 8080);
    let sent = find(&t, "sendto", "GET /hello.txt");
    assert!(sent.ret > 0);
    let received: i64 = t
        .iter()
        .filter(|c| c.call == "recvfrom" && c.ret > 0)
        .map(|c| c.ret)
        .sum();
    assert!(received as usize > HELLO.len(), "{}", dump(&t));
}

#[test]
fn exit_status_is_the_programs() {
    let net = Net::new();
    let dir = TempDir::new();
    let trace = dir.path("trace.json");
    let out = net.traced(&trace).args(["sh", "-c", "exit 7"]).output().unwrap();
    assert_eq!(out.status.code(), Some(7));
    let out = net.traced(&trace).args(["sh", "-c", "kill -TERM $$"]).output().unwrap();
    assert_eq!(out.status.code(), Some(128 + libc::SIGTERM));
    let out = Command::new(joyride())
        .args(["trace", "--", "/nonexistent/program"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out)
            .1
            .contains("cannot execute /nonexistent/program: No such file or directory"),
        "{:?}",
        text(&out).1
    );
    let out = Command::new(joyride())
        .args(["trace", "--", "no-such-program-jr"])
        .output()
        .unwrap();
    assert!(
        text(&out).1.contains("no-such-program-jr: command not found"),
        "{:?}",
        text(&out).1
    );
}

#[test]
fn target_in_another_network_namespace() {
    // The supervisor stays in the host namespace; the program moves itself
    // into the client namespace after the filter is in place. Sockets must be
    // created where the program lives, or the server is unreachable.
    let net = Net::new();
    let dir = TempDir::new();
    let _srv = http_server(&net, &dir, 8081);
    let trace = dir.path("trace.json");
    let url = format!("http://{}:8081/hello.txt", net.server_ip);
    let out = Command::new(joyride())
        .args(["trace", "--json", "-o"])
        .arg(&trace)
        .args([
            "--",
            "ip",
            "netns",
            "exec",
            &net.client_ns,
            "curl",
            "-sS",
            "--max-time",
            "10",
            &url,
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, HELLO);
    let t = read_trace(&trace);
    find(&t, "connect", &net.server_ip);
}

#[test]
fn busybox_static_wget_and_nc() {
    let net = Net::new();
    let dir = TempDir::new();
    let _srv = http_server(&net, &dir, 8082);
    let trace = dir.path("wget.json");
    let url = format!("http://{}:8082/hello.txt", net.server_ip);
    let out = net
        .traced(&trace)
        .args(["busybox", "wget", "-q", "-O", "-", &url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(text(&out).0, HELLO);
    let t = read_trace(&trace);
    assert_eq!(find(&t, "connect", &net.server_ip).ret, 0, "{}", dump(&t));

    // nc as a client: bytes reach a kernel nc server.
    let got = dir.path("got.txt");
    let mut srv = net.server("sh");
    srv.args(["-c", &format!("busybox nc -l -p 9001 > {}", got.display())]);
    let srv = Bg::spawn(srv);
    net.wait_tcp(9001);
    let trace = dir.path("nc.json");
    let mut client = net.traced(&trace);
    client.args([
        "sh",
        "-c",
        &format!("printf 'ping over nc\\n' | busybox nc {} 9001", net.server_ip),
    ]);
    let out = client.output().unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    drop(srv);
    assert_eq!(std::fs::read_to_string(&got).unwrap(), "ping over nc\n");
    let t = read_trace(&trace);
    assert_eq!(find(&t, "connect", "9001").ret, 0, "{}", dump(&t));

    // nc as a server under the trace: accept is served for it.
    let trace = dir.path("ncl.json");
    let mut server = net.traced(&trace);
    server
        .args(["busybox", "nc", "-l", "-p", "9002"])
        .stdout(Stdio::piped());
    let server = server.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let o = Command::new("ip")
            .args(["netns", "exec", &net.client_ns, "ss", "-Htln"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&o.stdout).contains(":9002 ") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "traced nc -l never listened");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let send = net
        .server("sh")
        .args([
            "-c",
            &format!("printf 'to the traced server\\n' | busybox nc {} 9002", net.client_ip),
        ])
        .output()
        .unwrap();
    assert!(send.status.success());
    let out = server.wait_with_output().unwrap();
    assert_eq!(text(&out).0, "to the traced server\n");
    let t = read_trace(&trace);
    let acc = t
        .iter()
        .find(|c| c.call.starts_with("accept"))
        .unwrap_or_else(|| panic!("{}", dump(&t)));
    assert!(acc.ret >= 0, "{}", dump(&t));
}

#[test]
fn go_static_http_client_under_preemption() {
    let net = Net::new();
    let dir = TempDir::new();
    let _srv = http_server(&net, &dir, 8083);
    let bin = build_go(&dir, "httpget.go");
    let trace = dir.path("trace.json");
    let url = format!("http://{}:8083/hello.txt", net.server_ip);
    let out = net.traced(&trace).arg(&bin).args([&url, "20", HELLO]).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout.trim(), "ok 20");
    let t = read_trace(&trace);
    let connects = t
        .iter()
        .filter(|c| c.call == "connect" && c.args.iter().any(|a| a.contains(&net.server_ip)))
        .count();
    assert!(connects >= 1, "{}", dump(&t));
    // Go's threads all show up: more than one pid made calls.
    assert!(t.iter().any(|c| c.call == "socket"));
}

#[test]
fn raw_syscall_instructions() {
    let net = Net::new();
    let dir = TempDir::new();
    let _srv = http_server(&net, &dir, 8084);
    let bin = build_c(&dir, "rawsys.c", &["-static"]);
    let trace = dir.path("trace.json");
    let out = net
        .traced(&trace)
        .arg(&bin)
        .args([&net.server_ip, "8084"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.ends_with(HELLO), "{stdout}");
    assert!(stderr.contains("x32 socket: -38"), "{stderr}");
    let t = read_trace(&trace);
    let x32 = &t[0];
    assert_eq!(
        (x32.call.as_str(), x32.errno.as_deref()),
        ("socket", Some("ENOSYS")),
        "{}",
        dump(&t)
    );
    assert!(x32.json["note"].as_str().unwrap_or("").contains("x32"), "{}", dump(&t));
    let calls: Vec<&str> = t[1..].iter().map(|c| c.call.as_str()).collect();
    assert_eq!(&calls[..3], ["socket", "connect", "sendto"], "{}", dump(&t));
    assert!(calls[3..].iter().all(|c| *c == "recvfrom"));
    assert_eq!(t.last().unwrap().ret, 0, "the last recvfrom sees EOF");
}

#[test]
fn i386_int80_and_socketcall_are_refused_and_shown() {
    let net = Net::new();
    let dir = TempDir::new();
    let bin = build_c(&dir, "sock32.c", &["-m32", "-static"]);
    // Without Joyride the kernel serves them: the program really makes sockets.
    let plain = Command::new(&bin).output().unwrap();
    let plain = text(&plain).0;
    assert!(plain.starts_with("socketcall=3 socket=4"), "{plain}");
    let trace = dir.path("trace.json");
    let out = net.traced(&trace).arg(&bin).output().unwrap();
    assert!(out.status.success());
    assert_eq!(text(&out).0.trim(), "socketcall=-38 socket=-38 getpid_ok=1");
    let t = read_trace(&trace);
    let sc = find(&t, "socketcall", "SYS_SOCKET");
    assert_eq!(sc.errno.as_deref(), Some("ENOSYS"));
    assert!(sc.json["note"].as_str().unwrap().contains("i386"));
    let direct = t
        .iter()
        .find(|c| c.call == "socket")
        .unwrap_or_else(|| panic!("{}", dump(&t)));
    assert_eq!(direct.errno.as_deref(), Some("ENOSYS"));
}

#[test]
fn io_uring_is_refused() {
    let dir = TempDir::new();
    let out = Command::new(joyride())
        .args(["trace", "-o"])
        .arg(dir.path("t"))
        .args(["--", "python3", "-c"])
        .arg("import ctypes,os; l=ctypes.CDLL(None,use_errno=True); p=ctypes.create_string_buffer(120); r=l.syscall(425,8,p); print(r, ctypes.get_errno())")
        .output()
        .unwrap();
    assert_eq!(text(&out).0.trim(), format!("-1 {}", libc::ENOSYS));
}

#[test]
fn bad_arguments_get_the_kernels_errors() {
    let net = Net::new();
    let dir = TempDir::new();
    let bin = build_c(&dir, "badargs.c", &[]);
    let mut srv = net.server("python3");
    srv.args(["-c", ECHO_SERVER, &net.server_ip, "9010"]);
    let _srv = Bg::spawn(srv);
    net.wait_tcp(9010);
    let (plain, traced, trace) = plain_and_traced(&net, &dir, &bin, &[&net.server_ip, "9010"]);
    assert_eq!(traced, plain, "errors under joyride differ from the kernel's");
    for expect in [
        "connect_bad_addr EFAULT",
        "connect_huge_len EINVAL",
        "setsockopt_unknown ENOPROTOOPT",
        "getsockopt_bad_len EFAULT",
        "sendto_bad_buf EFAULT",
        "sendmsg_too_many_iov EMSGSIZE",
        "sendmsg_bad_msghdr EFAULT",
        "connect_not_socket ENOTSOCK",
        "listen_bad_fd EBADF",
        "accept4_bad_flags EINVAL",
        "connect_ok OK",
        "recv_bad_buf EFAULT",
        "recv_after_efault 3 abc",
    ] {
        assert!(traced.lines().any(|l| l == expect), "missing `{expect}` in:\n{traced}");
    }
    // Every case shows up in the trace.
    let t = read_trace(&trace);
    assert!(
        t.iter().filter(|c| c.errno.as_deref() == Some("EFAULT")).count() >= 5,
        "{}",
        dump(&t)
    );
}

#[test]
fn killed_mid_call_leaks_nothing_over_10000_calls() {
    let net = Net::new();
    let dir = TempDir::new();
    let bin = build_c(&dir, "churn.c", &[]);
    let trace = dir.path("trace.json");
    let out = net
        .traced(&trace)
        .arg(&bin)
        .args([&net.server_ip, "9"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let field = |name: &str| -> i64 {
        stdout
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {stdout}"))
    };
    assert!(field("calls") >= 10_000);
    assert_eq!(field("killed"), 20);
    assert!(field("refused") > 3000, "{stdout}");
    assert!(field("fds_before") > 0);
    assert_eq!(
        field("fds_after"),
        field("fds_before"),
        "the supervisor leaked fds: {stdout}"
    );
    assert_eq!(field("threads_after"), field("threads_before"), "{stdout}");
}

#[test]
fn runs_as_an_ordinary_user() {
    let net = Net::new();
    let dir = TempDir::new();
    let _srv = http_server(&net, &dir, 8085);
    let trace = dir.path("trace.txt");
    // The trace file is created by the unprivileged supervisor.
    std::fs::set_permissions(&dir.0, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let url = format!("http://{}:8085/hello.txt", net.server_ip);
    let out = net
        .client("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(joyride())
        .args(["trace", "-o"])
        .arg(&trace)
        .args(["--", "curl", "-sS", &url])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, HELLO);
    let lines = std::fs::read_to_string(&trace).unwrap();
    assert!(
        lines
            .lines()
            .any(|l| l.contains("connect(") && l.contains(&net.server_ip)),
        "{lines}"
    );
}

#[test]
fn expr_selects_calls() {
    let net = Net::new();
    let dir = TempDir::new();
    let _srv = http_server(&net, &dir, 8086);
    let trace = dir.path("trace.json");
    let url = format!("http://{}:8086/hello.txt", net.server_ip);
    let out = Command::new(joyride())
        .args(["trace", "--json", "-e", "trace=connect", "-o"])
        .arg(&trace)
        .args(["--", "ip", "netns", "exec", &net.client_ns, "curl", "-sS", &url])
        .output()
        .unwrap();
    assert!(out.status.success());
    let t = read_trace(&trace);
    assert!(!t.is_empty());
    assert!(t.iter().all(|c| c.call == "connect"), "{}", dump(&t));
    let bad = Command::new(joyride())
        .args(["trace", "-e", "open", "--", "true"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(text(&bad).1.contains("`open` is not a network system call"));
}

/// `(call, result)` pairs of a trace, with runs of the same data call merged
/// (how a byte stream splits into reads depends on timing, not on the tracer)
/// and `EAGAIN` results of those runs dropped.
fn normalize(calls: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    let data = |c: &str| matches!(c, "sendto" | "recvfrom" | "sendmsg" | "recvmsg");
    let mut out: Vec<(String, String)> = Vec::new();
    for (call, res) in calls {
        if data(&call) && res == "EAGAIN" {
            continue;
        }
        if let Some(last) = out.last_mut() {
            if data(&call) && last.0 == call {
                if let (Ok(a), Ok(b)) = (last.1.parse::<i64>(), res.parse::<i64>()) {
                    last.1 = (a + b).to_string();
                    continue;
                }
            }
        }
        out.push((call, res));
    }
    out
}

/// Parses `strace -f -o FILE` output into `(call, result)`.
fn strace_calls(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.contains("+++") && !l.contains("---"))
        .filter_map(|l| {
            let l = l.split_once(' ').map(|(_, rest)| rest.trim_start()).unwrap_or(l);
            let call = l.split('(').next()?.to_owned();
            let (_, result) = l.rsplit_once(") = ")?;
            let mut words = result.split_whitespace();
            let ret = words.next()?;
            let res = if ret == "-1" {
                words.next()?.to_owned()
            } else {
                ret.to_owned()
            };
            Some((call, res))
        })
        .collect()
}

#[test]
fn agrees_with_strace() {
    let net = Net::new();
    let dir = TempDir::new();
    let _srv = http_server(&net, &dir, 8087);
    let url = format!("http://{}:8087/hello.txt", net.server_ip);
    let runs: [&[&str]; 2] = [&["curl", "-sS", &url], &["busybox", "wget", "-q", "-O", "-", &url]];
    for argv in runs {
        let st = dir.path("strace.txt");
        let out = net
            .client("strace")
            .args(["-f", "-e", "trace=%network", "-o"])
            .arg(&st)
            .args(argv)
            .output()
            .unwrap();
        assert!(out.status.success(), "{argv:?} under strace: {}", text(&out).1);
        let jr = dir.path("joyride.json");
        let out = net.traced(&jr).args(argv).output().unwrap();
        assert!(out.status.success(), "{argv:?} under joyride: {}", text(&out).1);
        assert_eq!(text(&out).0, HELLO);
        let ours = normalize(
            read_trace(&jr)
                .into_iter()
                .map(|c| (c.call, c.errno.unwrap_or_else(|| c.ret.to_string()))),
        );
        let theirs = normalize(strace_calls(&std::fs::read_to_string(&st).unwrap()));
        assert!(theirs.len() >= 2, "strace saw too little: {theirs:?}");
        assert_eq!(ours, theirs, "{argv:?}: joyride trace and strace disagree");
    }
}

#[test]
fn message_calls_match_the_kernel() {
    let net = Net::new();
    let dir = TempDir::new();
    let bin = build_c(&dir, "msgs.c", &[]);
    let (plain, traced, trace) = plain_and_traced(&net, &dir, &bin, &[]);
    assert_eq!(traced, plain, "message calls under joyride differ from the kernel's");
    for expect in [
        "sendmmsg 3 lens 3 5 7",
        "recvmmsg 3: one/3 three/5 fifteen/7",
        "sendmsg rights 1",
        "recvmsg rights 1 x cloexec=1 text=through the pipe",
        "peek 7 dgram-a fromlen=16 family=2",
        "recv truncated 3 dgr",
        "recvfrom 8 dgram-bb",
        "waitall 11 hello world",
    ] {
        assert!(traced.lines().any(|l| l == expect), "missing `{expect}` in:\n{traced}");
    }
    let t = read_trace(&trace);
    find(&t, "sendmmsg", "fifteen");
    find(&t, "recvmsg", "msg_controllen");
}

#[test]
fn blocking_calls_wait_without_stalling_others() {
    let net = Net::new();
    let dir = TempDir::new();
    let bin = build_c(&dir, "blocking.c", &["-pthread"]);
    let (plain, traced, trace) = plain_and_traced(&net, &dir, &bin, &[&net.server_ip, "9"]);
    assert_eq!(traced, plain, "blocking calls under joyride differ from the kernel's");
    assert_eq!(
        traced,
        "accept waited ok\nrecv waited ok: 9 late data\nrecv at close: 0\nrcvtimeo: -1 EAGAIN ok\nblocking connect: -1 ECONNREFUSED\n"
    );
    let t = read_trace(&trace);
    assert!(find(&t, "recvfrom", "late data").ret == 9, "{}", dump(&t));
    assert_eq!(
        find(&t, "connect", &net.server_ip).errno.as_deref(),
        Some("ECONNREFUSED")
    );
}

#[test]
fn signals_interrupt_or_restart_blocked_calls_like_the_kernel() {
    let net = Net::new();
    let dir = TempDir::new();
    let bin = build_c(&dir, "signals.c", &["-pthread"]);
    let (plain, traced, trace) = plain_and_traced(&net, &dir, &bin, &[]);
    assert_eq!(traced, plain, "signal handling under joyride differs from the kernel's");
    assert_eq!(
        traced,
        "no SA_RESTART: -1 EINTR handled=1\nSA_RESTART: 16 after the signal handled=2\n"
    );
    let t = read_trace(&trace);
    assert!(
        t.iter().any(|c| c.errno.as_deref() == Some("ERESTARTSYS")),
        "{}",
        dump(&t)
    );
}

#[test]
fn ctrl_c_reaches_a_program_blocked_in_accept() {
    // Python turns SIGINT into KeyboardInterrupt once the blocked call
    // returns; the supervisor must let the signal interrupt it.
    let dir = TempDir::new();
    let mut cmd = Command::new(joyride());
    cmd.args(["trace", "-o"]).arg(dir.path("t")).args([
        "--",
        "python3",
        "-c",
        "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(); print('ready', flush=True); s.accept()",
    ]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 6];
    std::io::Read::read_exact(&mut out, &mut first).unwrap();
    assert_eq!(&first, b"ready\n");
    std::thread::sleep(std::time::Duration::from_millis(200));
    // The program is the supervisor's only child.
    let pgrep = Command::new("pgrep")
        .args(["-P", &child.id().to_string()])
        .output()
        .unwrap();
    let pid = text(&pgrep).0.trim().to_owned();
    assert!(!pid.is_empty());
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let started = std::time::Instant::now();
    let status = child.wait().unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("KeyboardInterrupt"), "{err}");
    assert_eq!(status.code(), Some(128 + libc::SIGINT), "{err}");
}

/// An HTTP server that answers every request with HELLO in one write and
/// closes: python3 -c ONE_WRITE_HTTP IP PORT. One segment per answer keeps
/// the clients' receive calls the same from run to run.
const ONE_WRITE_HTTP: &str = "import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
s.bind((sys.argv[1],int(sys.argv[2]))); s.listen(64)
body=b'hello from the kernel peer\\n'
resp=b'HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: %d\\r\\nConnection: close\\r\\n\\r\\n%s'%(len(body),body)
while True:
    c,_=s.accept()
    d=b''
    while b'\\r\\n\\r\\n' not in d:
        x=c.recv(65536)
        if not x: break
        d+=x
    c.sendall(resp); c.close()";

/// Starts ONE_WRITE_HTTP on `port` in the server namespace.
fn one_write_http(net: &Net, port: u16) -> Bg {
    let mut srv = net.server("python3");
    srv.args(["-c", ONE_WRITE_HTTP, &net.server_ip, &port.to_string()]);
    let bg = Bg::spawn(srv);
    net.wait_tcp(port);
    bg
}

/// `joyride trace ARGS...` run in the client namespace (add `--` and the
/// program).
fn joyride_in(net: &Net, args: &[&str]) -> Command {
    let mut c = net.client(joyride().to_str().unwrap());
    c.arg("trace").args(args);
    c
}

/// `(syscall, (calls, errors))` rows of a `strace -c` table (strace's or
/// ours), without the total.
fn summary_rows(table: &str) -> std::collections::BTreeMap<String, (u64, u64)> {
    let mut rows = std::collections::BTreeMap::new();
    let mut rules = 0;
    for line in table.lines() {
        if line.starts_with("------") {
            rules += 1;
            continue;
        }
        if rules != 1 {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let name = f.last().unwrap().to_string();
        let calls: u64 = f[3].parse().unwrap_or_else(|_| panic!("bad row {line:?}"));
        let errors: u64 = if f.len() == 6 { f[4].parse().unwrap() } else { 0 };
        rows.insert(name, (calls, errors));
    }
    assert_eq!(rules, 2, "not a -c table:\n{table}");
    rows
}

#[test]
fn summary_counts_match_strace_c() {
    let net = Net::new();
    let dir = TempDir::new();
    let _srv = one_write_http(&net, 8090);
    let url = format!("http://{}:8090/hello.txt", net.server_ip);
    let go = build_go(&dir, "httpget.go");
    let urllib = "import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode(), end='')";
    let runs: [(&str, Vec<&str>, &str); 3] = [
        ("curl", vec!["curl", "-sS", &url], HELLO),
        ("urllib", vec!["python3", "-c", urllib, &url], HELLO),
        ("go", vec![go.to_str().unwrap(), &url, "1", HELLO], "ok 1\n"),
    ];
    for (what, argv, want) in runs {
        let st = dir.path("strace.txt");
        let out = net
            .client("strace")
            .args(["-f", "-c", "-e", "trace=%network", "-o"])
            .arg(&st)
            .args(&argv)
            .output()
            .unwrap();
        assert!(out.status.success(), "{what} under strace: {}", text(&out).1);
        let jr = dir.path("joyride.txt");
        let out = joyride_in(&net, &["-f", "-c", "-o", jr.to_str().unwrap(), "--"])
            .args(&argv)
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{what} under joyride: {stderr}");
        assert_eq!(stdout, want, "{what}");
        let ours = std::fs::read_to_string(&jr).unwrap();
        assert!(
            ours.starts_with("% time     seconds  usecs/call     calls    errors syscall\n"),
            "{ours}"
        );
        assert!(!ours.contains("[pid"), "-c prints no calls:\n{ours}");
        let theirs = std::fs::read_to_string(&st).unwrap();
        assert_eq!(
            summary_rows(&ours),
            summary_rows(&theirs),
            "{what}:\nours:\n{ours}\nstrace's:\n{theirs}"
        );
        // The total line adds the rows up.
        let total = ours.lines().last().unwrap();
        let calls: u64 = summary_rows(&ours).values().map(|r| r.0).sum();
        assert!(total.starts_with("100.00 ") && total.ends_with(" total"), "{ours}");
        assert_eq!(
            total.split_whitespace().nth(3),
            Some(calls.to_string().as_str()),
            "{ours}"
        );
    }

    // -C: the calls and the table, both to the -o file.
    let both = dir.path("both.txt");
    let out = joyride_in(
        &net,
        &[
            "-C",
            "-S",
            "calls",
            "-o",
            both.to_str().unwrap(),
            "--",
            "curl",
            "-sS",
            &url,
        ],
    )
    .output()
    .unwrap();
    assert!(out.status.success());
    let both = std::fs::read_to_string(&both).unwrap();
    let (lines, table) = both.split_once("% time ").expect("a table after the calls");
    let connects = lines.lines().filter(|l| l.contains("] connect(")).count() as u64;
    assert!(connects >= 1, "{both}");
    assert_eq!(
        summary_rows(&format!("% time {table}"))["connect"].0,
        connects,
        "{both}"
    );
    let by_calls: Vec<u64> = summary_rows(&format!("% time {table}")).values().map(|r| r.0).collect();
    assert!(!by_calls.is_empty());
    let order: Vec<u64> = table
        .lines()
        .skip(2)
        .take_while(|l| !l.starts_with("---"))
        .map(|l| l.split_whitespace().nth(3).unwrap().parse().unwrap())
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] >= w[1]),
        "-S calls sorts by calls: {table}"
    );
}

#[test]
fn status_selects_what_is_printed() {
    let net = Net::new();
    let dir = TempDir::new();
    let _srv = one_write_http(&net, 8091);
    let url = format!("http://{}:8091/hello.txt", net.server_ip);
    // A refused connect besides whatever else fails (EINPROGRESS, nscd).
    let script = format!(
        "curl -sS {url}; python3 -c \"import socket; socket.socket().connect(('{}', 8092))\" 2>/dev/null; true",
        net.server_ip
    );
    let all = dir.path("all.json");
    let out = joyride_in(
        &net,
        &["--json", "-o", all.to_str().unwrap(), "--", "sh", "-c", &script],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    let all = read_trace(&all);
    let failures = all.iter().filter(|c| c.errno.is_some()).count();
    assert!(failures >= 1 && failures < all.len(), "{}", dump(&all));
    for (flags, want_failed) in [
        (&["-e", "status=failed"][..], true),
        (&["-Z"][..], true),
        (&["-e", "status=successful"][..], false),
        (&["-z"][..], false),
        (&["-e", "status=!failed"][..], false),
    ] {
        let t = dir.path("t.json");
        let mut args = vec!["--json", "-o", t.to_str().unwrap()];
        args.extend_from_slice(flags);
        args.extend(["--", "sh", "-c", &script]);
        let out = joyride_in(&net, &args).output().unwrap();
        assert!(out.status.success(), "{flags:?}: {}", text(&out).1);
        let t = read_trace(&t);
        assert!(!t.is_empty(), "{flags:?}");
        assert!(
            t.iter().all(|c| c.errno.is_some() == want_failed),
            "{flags:?} printed other calls:\n{}",
            dump(&t)
        );
        if want_failed {
            assert!(
                t.iter()
                    .any(|c| c.call == "connect" && c.errno.as_deref() == Some("ECONNREFUSED")),
                "{}",
                dump(&t)
            );
        }
    }
    // The text form too, combined with trace=.
    let out = joyride_in(
        &net,
        &["-e", "trace=connect", "-e", "status=failed", "--", "sh", "-c", &script],
    )
    .output()
    .unwrap();
    let stderr = text(&out).1;
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("[pid")).collect();
    assert!(!lines.is_empty(), "{stderr}");
    assert!(
        lines.iter().all(|l| l.contains("] connect(") && l.contains(") = -1 E")),
        "{stderr}"
    );
}

#[test]
fn decode_fds_names_endpoints() {
    let net = Net::new();
    let dir = TempDir::new();
    let mut srv = net.server("python3");
    srv.args(["-c", ECHO_SERVER, &net.server_ip, "9020"]);
    let _srv = Bg::spawn(srv);
    net.wait_tcp(9020);
    let mut srv6 = net.server("python3");
    srv6.args([
        "-c",
        &ECHO_SERVER.replace("socket.socket()", "socket.socket(socket.AF_INET6)"),
        &net.server_ip6,
        "9021",
    ]);
    let _srv6 = Bg::spawn(srv6);
    net.wait_tcp(9021);
    let client = "import socket,sys
for fam,ip,port in ((socket.AF_INET,sys.argv[1],9020),(socket.AF_INET6,sys.argv[2],9021)):
    s=socket.socket(fam); s.connect((ip,port)); me=s.getsockname()
    print(me[0], me[1], s.fileno()); s.sendall(b'ping'); s.recv(4)
a,b=socket.socketpair(); print('pair', a.fileno(), b.fileno())
d=open('/dev/null'); print('null', d.fileno())
t=socket.socket()
try: t.connect(('127.0.0.1', 1))
except OSError: pass
t.getsockname()";
    let trace = dir.path("trace.txt");
    let out = joyride_in(
        &net,
        &["-y", "-o", trace.to_str().unwrap(), "--", "python3", "-c", client],
    )
    .args([&net.server_ip, &net.server_ip6])
    .output()
    .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let trace = std::fs::read_to_string(&trace).unwrap();
    let mut lines = stdout.lines();
    for (server, proto) in [
        (format!("{}:9020", net.server_ip), "TCP"),
        (format!("[{}]:9021", net.server_ip6), "TCPv6"),
    ] {
        let me: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        let local = if proto == "TCP" {
            format!("{}:{}", me[0], me[1])
        } else {
            format!("[{}]:{}", me[0], me[1])
        };
        let fd = me[2];
        let want = format!("{fd}<{proto}:[{local}->{server}]>");
        for call in ["connect", "getsockname", "sendto", "recvfrom"] {
            assert!(
                trace.lines().any(|l| l.contains(&format!("] {call}({want}, "))),
                "no {call}({want}, ...) in:\n{trace}"
            );
        }
        // socket()'s result names the protocol before there are endpoints.
        let fresh = format!("= {fd}<{proto}:[");
        assert!(
            trace
                .lines()
                .any(|l| l.contains("] socket(AF_INET") && l.contains(&fresh)),
            "no socket(...) {fresh}...]> in:\n{trace}"
        );
    }
    let pair: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let pair_line = trace
        .lines()
        .find(|l| l.contains("] socketpair("))
        .unwrap_or_else(|| panic!("{trace}"));
    assert!(
        pair_line.contains(&format!("[{}<UNIX-STREAM:[", pair[1]))
            && pair_line.contains(&format!(", {}<UNIX-STREAM:[", pair[2])),
        "{pair_line}"
    );
    // A refused connect: the socket has no endpoints (the program keeps it
    // open past the line: a later trapped call waits for the line).
    assert!(
        trace
            .lines()
            .any(|l| l.contains("] connect(") && l.contains("<TCP:[") && l.contains("ECONNREFUSED")),
        "{trace}"
    );
    // Without -y, plain numbers.
    let plain = dir.path("plain.txt");
    let out = joyride_in(&net, &["-o", plain.to_str().unwrap(), "--", "python3", "-c", client])
        .args([&net.server_ip, &net.server_ip6])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!std::fs::read_to_string(&plain).unwrap().contains("<TCP"));
}

/// The `[pid N] STAMP ` prefix's STAMP of a text line.
fn stamp(line: &str) -> &str {
    line.split_once("] ").unwrap().1.split(' ').next().unwrap()
}

#[test]
fn timestamps_are_the_calls_start_times() {
    let net = Net::new();
    let dir = TempDir::new();
    let _srv = one_write_http(&net, 8093);
    let url = format!("http://{}:8093/hello.txt", net.server_ip);
    // Python is one thread: each call starts after the previous one ends.
    let client = "import sys,urllib.request
for _ in range(3): urllib.request.urlopen(sys.argv[1]).read()";
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64
    };
    let before = now();
    let t = dir.path("tt.txt");
    let out = joyride_in(
        &net,
        &[
            "-ttt",
            "-T",
            "-o",
            t.to_str().unwrap(),
            "--",
            "python3",
            "-c",
            client,
            &url,
        ],
    )
    .output()
    .unwrap();
    let after = now();
    assert!(out.status.success(), "{}", text(&out).1);
    let ttt = std::fs::read_to_string(&t).unwrap();
    let starts: Vec<i64> = ttt
        .lines()
        .map(|l| {
            let (s, us) = stamp(l).split_once('.').unwrap_or_else(|| panic!("no -ttt stamp: {l}"));
            assert_eq!(us.len(), 6, "{l}");
            s.parse::<i64>().unwrap() * 1_000_000 + us.parse::<i64>().unwrap()
        })
        .collect();
    assert!(starts.len() >= 9, "{ttt}");
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "start times go back:\n{ttt}");
    assert!(
        before <= starts[0] && *starts.last().unwrap() <= after,
        "{before} {after}\n{ttt}"
    );

    // -tt with -r: local time of day (UTC here), and each relative stamp is
    // the difference of consecutive starts.
    let t = dir.path("ttr.txt");
    let out = joyride_in(
        &net,
        &[
            "-tt",
            "-r",
            "-o",
            t.to_str().unwrap(),
            "--",
            "python3",
            "-c",
            client,
            &url,
        ],
    )
    .env("TZ", "UTC")
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    let ttr = std::fs::read_to_string(&t).unwrap();
    let mut prev: Option<i64> = None;
    for l in ttr.lines() {
        let day = stamp(l);
        let (hms, us) = day.split_once('.').unwrap();
        let hms: Vec<i64> = hms.split(':').map(|v| v.parse().unwrap()).collect();
        assert!(hms.len() == 3 && hms[0] < 24 && hms[1] < 60 && hms[2] < 60, "{l}");
        let micros = ((hms[0] * 60 + hms[1]) * 60 + hms[2]) * 1_000_000 + us.parse::<i64>().unwrap();
        let today = now() % 86_400_000_000;
        assert!(
            (today - micros).rem_euclid(86_400_000_000) < 60_000_000,
            "{l} is not UTC now"
        );
        let rel = l.split_once("(+").unwrap_or_else(|| panic!("no -r stamp: {l}")).1;
        let rel = rel.split_once(')').unwrap().0.trim();
        let (s, u) = rel.split_once('.').unwrap();
        let rel = s.parse::<i64>().unwrap() * 1_000_000 + u.parse::<i64>().unwrap();
        assert_eq!(rel, prev.map_or(0, |p| micros - p), "{l}\n{ttr}");
        prev = Some(micros);
    }
}

#[test]
fn strsize_cuts_strings() {
    let net = Net::new();
    let dir = TempDir::new();
    let _srv = one_write_http(&net, 8094);
    let url = format!("http://{}:8094/hello.txt", net.server_ip);
    let t = dir.path("s.txt");
    let out = joyride_in(&net, &["-s", "8", "-o", t.to_str().unwrap(), "--", "curl", "-sS", &url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(text(&out).0, HELLO);
    let s = std::fs::read_to_string(&t).unwrap();
    assert!(
        s.contains("sendto(5, \"GET /hel\"..., ") || s.contains(", \"GET /hel\"..., "),
        "{s}"
    );
    assert!(s.contains(", \"HTTP/1.1\"..., "), "{s}");
    // Addresses stay whole.
    assert!(s.contains(&format!("inet_addr(\"{}\")", net.server_ip)), "{s}");
    // The default is strace's 32.
    let out = joyride_in(&net, &["-o", t.to_str().unwrap(), "--", "curl", "-sS", &url])
        .output()
        .unwrap();
    assert!(out.status.success());
    let s = std::fs::read_to_string(&t).unwrap();
    let sent = s.lines().find(|l| l.contains("] sendto(")).unwrap();
    let quoted = sent.split_once(", \"").unwrap().1.split_once("\"...").unwrap().0;
    assert_eq!(quoted, "GET /hello.txt HTTP/1.1\\r\\nHost: 1", "{sent}");
}

#[test]
fn strace_flags_accepted_unknown_ones_named() {
    let dir = TempDir::new();
    let t = dir.path("t.txt");
    let out = Command::new(joyride())
        .args(["trace", "-f", "-T", "-w", "-o"])
        .arg(&t)
        .args(["--", "sh", "-c", "exit 3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out).1);
    for bad in [&["-k"][..], &["-X", "raw"], &["-p", "1"]] {
        let out = Command::new(joyride())
            .arg("trace")
            .args(bad)
            .args(["--", "true"])
            .output()
            .unwrap();
        let stderr = text(&out).1;
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {stderr}");
        assert!(
            stderr.contains(&format!("unexpected argument '{}'", bad[0])),
            "{stderr}"
        );
        for supported in [
            "-f",
            "-c | -C",
            "-e EXPR",
            "-t | -tt | -ttt",
            "-s STRSIZE",
            "-y",
            "-z | -Z",
            "-o FILE",
        ] {
            assert!(
                stderr.contains(supported),
                "{bad:?}: `{supported}` not named in: {stderr}"
            );
        }
    }
    for (bad, says) in [
        (&["-ff"][..], "-ff"),
        (&["-e", "abbrev=all"], "-e trace=SET and -e status=SET"),
        (&["-e", "status=weird"], "not a status"),
        (&["-S", "calls"], "give -c or -C"),
        (&["-c", "-C"], "cannot be used with"),
    ] {
        let out = Command::new(joyride())
            .arg("trace")
            .args(bad)
            .args(["--", "true"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad:?}");
        assert!(text(&out).1.contains(says), "{bad:?}: {}", text(&out).1);
    }
}
