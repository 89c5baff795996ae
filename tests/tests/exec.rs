//! Acceptance tests of `joyride exec`: real, unmodified programs (curl,
//! busybox-static, a static Go server, Python, nginx, iperf3, dig, redis, C
//! programs) run under Joyride in a namespace whose only link is driven by
//! the user-space stack through DPDK `net_af_packet`, against Linux kernel
//! peers in a second namespace (see `joyride_tests::exec`).
//!
//! Every test checks what a user would (bodies by SHA-256, tool reports),
//! is bounded in time (programs are killed past their limit), and under
//! Joyride proves the user-space stack served it: the `--stats` block shows
//! the opens (or datagrams) and `sockets_kernel 0`, and `ss` in the target
//! namespace shows no kernel socket of the program's while it runs.
//!
//! All of them live in this one file so that they run on their own:
//! `cargo test -p joyride-tests --test exec`. With `JOYRIDE_EXEC_ON_KERNEL=1`
//! they validate themselves with the programs on the kernel stack instead;
//! without it they fail (not skip) while `joyride` has no `exec`.

use std::fs::File;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use joyride_tests::exec::{
    fd_count, need, random_file, rss_kib, run, sha256_bytes, sha256_file, ExecNet, Netns, Program, Served, Stats,
    PYTHON,
};
use joyride_tests::{build_c, build_go, joyride, program_source, TempDir};

const SHORT: Duration = Duration::from_secs(30);
const LONG: Duration = Duration::from_secs(150);

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A kernel HTTP server in the peer namespace serving `dir` (GET) and
/// hashing POST bodies (`/sha256`) on port 8080.
fn peer_http(net: &ExecNet, dir: &TempDir) -> Program {
    let p = Program::spawn(net.peer_py("http", &[&net.peer_ip, "8080", s(&dir.0)]), Stdio::null());
    net.wait_peer_listen(8080, false);
    p
}

/// 1. curl (dynamically linked) GETs 100 MB from a kernel HTTP server and
///    POSTs 100 MB to one that answers the body's SHA-256.
#[test]
fn curl_get_and_post_100mb() {
    let net = ExecNet::new();
    let dir = TempDir::new();
    let big = dir.path("big");
    let want = random_file(&big, 100 << 20, 1);
    let _server = peer_http(&net, &dir);
    let got = dir.path("got");

    let mut get = net.under_joyride(need("curl"));
    get.args(["-sS", "--fail", "--max-time", "140", "-o", s(&got)])
        .arg(format!("http://{}:8080/big", net.peer_ip));
    let ran = net.run_watched(get, LONG);
    ran.assert_ok("curl GET");
    assert_eq!(sha256_file(&got), want, "GET body differs");
    net.assert_stats(&ran.stderr, &[Served::ActiveOpens]);

    let mut post = net.under_joyride(need("curl"));
    post.args(["-sS", "--fail", "--max-time", "140", "-H", "Expect:", "--data-binary"])
        .arg(format!("@{}", s(&big)))
        .arg(format!("http://{}:8080/sha256", net.peer_ip));
    let ran = net.run_watched(post, LONG);
    ran.assert_ok("curl POST");
    assert_eq!(ran.out().trim(), want, "the server hashed another body");
    net.assert_stats(&ran.stderr, &[Served::ActiveOpens]);
}

/// 2. busybox-static: `wget`, `nc` as a client and `nc -l` as a server,
///    data checked both ways.
#[test]
fn busybox_wget_and_nc() {
    let net = ExecNet::new();
    let dir = TempDir::new();
    let busybox = need("busybox");

    // wget
    let file = dir.path("file");
    let want = random_file(&file, 10 << 20, 2);
    let server = peer_http(&net, &dir);
    let got = dir.path("got");
    let mut wget = net.under_joyride(&busybox);
    wget.args(["wget", "-q", "-O", s(&got)])
        .arg(format!("http://{}:8080/file", net.peer_ip));
    let ran = net.run_watched(wget, SHORT);
    ran.assert_ok("busybox wget");
    assert_eq!(sha256_file(&got), want, "wget body differs");
    net.assert_stats(&ran.stderr, &[Served::ActiveOpens]);
    drop(server);

    // nc client: it sends its stdin, the peer sends its file.
    let (to_peer, from_peer) = (dir.path("to_peer"), dir.path("from_peer"));
    let to_peer_sum = random_file(&to_peer, 1 << 20, 3);
    let from_peer_sum = random_file(&from_peer, 1 << 20, 4);
    let peer_got = dir.path("peer_got");
    let mut peer = Program::spawn(
        net.peer_py(
            "ncpeer",
            &[
                &net.peer_ip,
                "9000",
                s(&from_peer),
                &(1 << 20).to_string(),
                s(&peer_got),
            ],
        ),
        Stdio::null(),
    );
    peer.wait_stdout("listening", SHORT);
    let mut nc = net.under_joyride(&busybox);
    nc.args(["nc", &net.peer_ip, "9000"]);
    let ran = net.run_watched_with(nc, File::open(&to_peer).expect("open").into(), None, SHORT);
    let peer_ran = peer.wait_timeout(SHORT).expect("the nc peer ends");
    peer_ran.assert_ok("nc peer");
    assert_eq!(
        ran.stdout.len(),
        1 << 20,
        "nc client received {} bytes",
        ran.stdout.len()
    );
    assert_eq!(
        sha256_bytes(&ran.stdout),
        from_peer_sum,
        "nc client received other bytes"
    );
    assert_eq!(sha256_file(&peer_got), to_peer_sum, "the peer received other bytes");
    net.assert_stats(&ran.stderr, &[Served::ActiveOpens]);

    // nc -l server: it sends its stdin, the peer client sends its file.
    let peer_got2 = dir.path("peer_got2");
    let mut nc = net.under_joyride(&busybox);
    nc.args(["nc", "-l", "-p", "9001"]);
    let mut server = Program::spawn(nc, File::open(&from_peer).expect("open").into());
    let client = run(
        net.peer_py(
            "ncclient",
            &[
                &net.ip,
                "9001",
                s(&to_peer),
                &(1 << 20).to_string(),
                s(&peer_got2),
                "20",
            ],
        ),
        SHORT,
    );
    client.assert_ok("nc -l peer client");
    let ran = server.wait_timeout(SHORT).unwrap_or_else(|| {
        let r = server.kill_and_collect();
        panic!("nc -l did not end after its client left:\n{}", r.describe())
    });
    assert_eq!(
        sha256_file(&peer_got2),
        from_peer_sum,
        "the peer client received other bytes"
    );
    assert_eq!(ran.stdout.len(), 1 << 20, "nc -l received {} bytes", ran.stdout.len());
    assert_eq!(sha256_bytes(&ran.stdout), to_peer_sum, "nc -l received other bytes");
    net.assert_stats(&ran.stderr, &[Served::PassiveOpens]);
}

/// 3. A static Go HTTP server under Joyride answers 200 concurrent requests
///    (each with a timeout) of a Go client in the peer namespace.
#[test]
fn go_http_server_200_concurrent() {
    let net = ExecNet::new();
    let dir = TempDir::new();
    let prog = build_go(&dir, "exec_http.go");
    let mut server = Program::spawn(
        {
            let mut c = net.under_joyride(&prog);
            c.args(["serve", &format!("{}:8081", net.ip)]);
            c
        },
        Stdio::null(),
    );
    server.wait_stdout("listening", SHORT);
    net.wait_served(&mut server, 8081, 20);
    net.assert_no_kernel_socket(8081);
    let mut load = net.peer(&prog);
    load.args(["load", &format!("http://{}:8081", net.ip), "200"]);
    let ran = run(load, Duration::from_secs(60));
    ran.assert_ok("200 concurrent requests");
    assert!(ran.out().contains("ok 200"), "{}", ran.describe());
    net.assert_no_kernel_socket(8081);
    let ran = server.stop("TERM", net.kernel, SHORT);
    let stats = net.assert_stats(&ran.stderr, &[Served::PassiveOpens]);
    if let Some(st) = stats {
        assert!(st.get("tcp_passive_opens") >= 2, "{:?}", st);
    }
}

/// 4. Python: `http.server` under Joyride serves a file to curl in the peer
///    namespace; `urllib` under Joyride fetches one from the peer.
#[test]
fn python_http_server_and_urllib() {
    let net = ExecNet::new();
    let dir = TempDir::new();
    let file = dir.path("file");
    let want = random_file(&file, 5 << 20, 5);

    let mut c = net.under_joyride(PYTHON);
    c.args(["-m", "http.server", "8082", "--bind", &net.ip, "--directory", s(&dir.0)]);
    let mut server = Program::spawn(c, Stdio::null());
    net.wait_served(&mut server, 8082, 20);
    net.assert_no_kernel_socket(8082);
    let got = dir.path("got");
    let mut curl = net.peer(need("curl"));
    curl.args(["-sS", "--fail", "--max-time", "25", "-o", s(&got)])
        .arg(format!("http://{}:8082/file", net.ip));
    run(curl, SHORT).assert_ok("curl from the peer");
    assert_eq!(sha256_file(&got), want, "http.server sent another body");
    let ran = server.stop("INT", net.kernel, SHORT);
    net.assert_stats(&ran.stderr, &[Served::PassiveOpens]);

    let _peer = peer_http(&net, &dir);
    let mut c = net.under_joyride(PYTHON);
    c.args([
        "-c",
        "import hashlib, sys, urllib.request\n\
         body = urllib.request.urlopen(sys.argv[1], timeout=20).read()\n\
         print(len(body), hashlib.sha256(body).hexdigest())",
        &format!("http://{}:8080/file", net.peer_ip),
    ]);
    let ran = net.run_watched(c, SHORT);
    ran.assert_ok("urllib");
    assert_eq!(
        ran.out().trim(),
        format!("{} {want}", 5 << 20),
        "urllib got another body"
    );
    net.assert_stats(&ran.stderr, &[Served::ActiveOpens]);
}

/// 4b. A Python HTTPS server that wraps its *listening* socket in TLS
///     (`SSLContext.wrap_socket`, which probes the not-connected socket with
///     `recv(1)` and must get `ENOTCONN` or `EINVAL`, not `EAGAIN`) serves
///     20 MB intact to the peer's `curl -k`.
#[test]
fn python_https_server_on_a_wrapped_listener() {
    let net = ExecNet::new();
    let dir = TempDir::new();
    let file = dir.path("file");
    let want = random_file(&file, 20 << 20, 11);
    let (key, cert) = (dir.path("key.pem"), dir.path("cert.pem"));
    let mut gen = std::process::Command::new(need("openssl"));
    gen.args([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=joyride-test",
    ])
    .args(["-keyout", s(&key), "-out", s(&cert)]);
    run(gen, SHORT).assert_ok("openssl req");

    let mut c = net.under_joyride(PYTHON);
    c.args([
        "-u",
        "-c",
        "import functools, http.server, ssl, sys\n\
         ip, port, root, cert, key = sys.argv[1:6]\n\
         handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=root)\n\
         httpd = http.server.ThreadingHTTPServer((ip, int(port)), handler)\n\
         ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
         ctx.load_cert_chain(cert, key)\n\
         httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)\n\
         print('serving', flush=True)\n\
         httpd.serve_forever()",
        &net.ip,
        "8443",
        s(&dir.0),
        s(&cert),
        s(&key),
    ]);
    let mut server = Program::spawn(c, Stdio::null());
    net.wait_served(&mut server, 8443, 20);
    let got = dir.path("got");
    let mut curl = net.peer(need("curl"));
    curl.args(["-k", "-sS", "--fail", "--max-time", "60", "-o", s(&got)])
        .arg(format!("https://{}:8443/file", net.ip));
    run(curl, LONG).assert_ok("curl -k from the peer");
    assert_eq!(sha256_file(&got), want, "the HTTPS server sent another body");
    let ran = server.stop("INT", net.kernel, SHORT);
    net.assert_stats(&ran.stderr, &[Served::PassiveOpens]);
}

/// 4c. `--nic` on a veth whose peer keeps its default offloads: the peer's
///     segments carry unfinished checksums; `joyride exec` stops at once
///     with an error naming the fix, instead of hanging.
#[test]
fn nic_peer_with_checksum_offload_fails_at_once() {
    let net = ExecNet::new();
    let dir = TempDir::new();
    random_file(&dir.path("file"), 1000, 3);
    let _peer = peer_http(&net, &dir);
    let mut on = std::process::Command::new("ip");
    on.args(["netns", "exec", &net.b_ns, "ethtool", "-K", &net.b_dev, "tx", "on"]);
    run(on, SHORT).assert_ok("ethtool -K tx on");
    let mut c = net.under_joyride(need("curl"));
    c.args(["-sS", "--max-time", "20", "-o", "/dev/null"])
        .arg(format!("http://{}:8080/file", net.peer_ip));
    let started = std::time::Instant::now();
    let ran = net.run_watched(c, SHORT);
    if net.kernel {
        // Validation: the kernel takes such frames, so the fetch works.
        return ran.assert_ok("curl on the kernel with the peer's offloads on");
    }
    assert!(
        !ran.status.success(),
        "curl got through unfinished checksums?\n{}",
        ran.describe()
    );
    assert!(
        ran.stderr.contains("ethtool -K"),
        "the error does not name the fix:\n{}",
        ran.describe()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?} to fail",
        started.elapsed()
    );
}

/// 5. nginx (2 workers, epoll, sendfile) under Joyride: `wrk` from the peer
///    gets no errors, and a 10 MB file (the sendfile path) arrives intact.
#[test]
fn nginx_wrk_and_sendfile() {
    let net = ExecNet::new();
    let dir = TempDir::new();
    let www = dir.path("www");
    std::fs::create_dir(&www).expect("mkdir");
    std::fs::write(
        www.join("index.html"),
        "<html>hello from nginx under joyride</html>\n".repeat(20),
    )
    .expect("write");
    let want = random_file(&www.join("big"), 10 << 20, 6);
    let conf = dir.path("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off;\n\
             master_process on;\n\
             worker_processes 2;\n\
             user www-data;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\n\
             events {{ use epoll; worker_connections 1024; }}\n\
             http {{\n\
               sendfile on;\n\
               access_log off;\n\
               keepalive_requests 100000;\n\
               client_body_temp_path {d}/body;\n\
               proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n\
               uwsgi_temp_path {d}/uwsgi;\n\
               scgi_temp_path {d}/scgi;\n\
               types {{ text/html html; }}\n\
               default_type application/octet-stream;\n\
               server {{ listen {ip}:8083; root {www}; }}\n\
             }}\n",
            d = s(&dir.0),
            ip = net.ip,
            www = s(&www),
        ),
    )
    .expect("write nginx.conf");
    let mut c = net.under_joyride(need("nginx"));
    c.args(["-p", s(&dir.0), "-e", s(&dir.path("error.log")), "-c", s(&conf)]);
    let mut server = Program::spawn(c, Stdio::null());
    net.wait_served(&mut server, 8083, 20);
    net.assert_no_kernel_socket(8083);

    let mut wrk = net.peer(need("wrk"));
    wrk.args(["-t2", "-c50", "-d5s", "--timeout", "5s"])
        .arg(format!("http://{}:8083/index.html", net.ip));
    let ran = run(wrk, SHORT);
    ran.assert_ok("wrk");
    let out = ran.out();
    // "  12345 requests in 5.00s, 1.23MB read"
    let requests: u64 = out
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no request count in wrk's output:\n{out}"));
    assert!(requests > 0, "wrk made no request:\n{out}");
    assert!(!out.contains("Non-2xx"), "wrk got non-2xx answers:\n{out}");
    assert!(!out.contains("Socket errors"), "wrk saw socket errors:\n{out}");
    eprintln!("wrk: {requests} requests");

    let got = dir.path("got");
    let mut curl = net.peer(need("curl"));
    curl.args(["-sS", "--fail", "--max-time", "25", "-o", s(&got)])
        .arg(format!("http://{}:8083/big", net.ip));
    run(curl, SHORT).assert_ok("curl of the 10 MB file");
    assert_eq!(sha256_file(&got), want, "nginx sent another body");
    net.assert_no_kernel_socket(8083);
    let ran = server.stop("TERM", net.kernel, SHORT);
    assert!(
        ran.status.success(),
        "nginx did not stop cleanly: {}\nerror.log:\n{}",
        ran.describe(),
        std::fs::read_to_string(dir.path("error.log")).unwrap_or_default()
    );
    net.assert_stats(&ran.stderr, &[Served::PassiveOpens]);
}

/// Checks an `iperf3 --json` report: no error, bytes both sent and received.
#[track_caller]
fn iperf3_ok(what: &str, out: &str) {
    let v: serde_json::Value =
        serde_json::from_str(out).unwrap_or_else(|e| panic!("{what}: iperf3 --json output is not JSON ({e}):\n{out}"));
    assert!(v.get("error").is_none(), "{what}: iperf3 error: {}", v["error"]);
    let sent = v["end"]["sum_sent"]["bytes"].as_u64().unwrap_or(0);
    let received = v["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
    assert!(
        sent > 0 && received > 0,
        "{what}: sent {sent}, received {received}:\n{out}"
    );
    eprintln!(
        "{what}: {received} bytes, {:.0} Mbit/s",
        v["end"]["sum_received"]["bits_per_second"].as_f64().unwrap_or(0.0) / 1e6
    );
}

/// 6. iperf3 under Joyride as a client and as a server, both directions.
#[test]
fn iperf3_client_and_server_both_directions() {
    let net = ExecNet::new();
    let iperf3 = need("iperf3");

    // Client under Joyride.
    let _peer = Program::spawn(
        {
            let mut c = net.peer(&iperf3);
            c.args(["-s", "-p", "5201", "-B", &net.peer_ip]);
            c
        },
        Stdio::null(),
    );
    net.wait_peer_listen(5201, false);
    for reverse in [false, true] {
        let mut c = net.under_joyride(&iperf3);
        c.args(["-c", &net.peer_ip, "-p", "5201", "-t", "3", "--json"]);
        if reverse {
            c.arg("-R");
        }
        let ran = net.run_watched(c, SHORT);
        ran.assert_ok("iperf3 client");
        iperf3_ok(if reverse { "client -R" } else { "client" }, &ran.out());
        net.assert_stats(&ran.stderr, &[Served::ActiveOpens]);
    }

    // Server under Joyride; the peer's client retries until it is up.
    let mut c = net.under_joyride(&iperf3);
    c.args(["-s", "-p", "5202", "-B", &net.ip]);
    let mut server = Program::spawn(c, Stdio::null());
    for reverse in [false, true] {
        let mut last = String::new();
        let mut done = false;
        for _ in 0..20 {
            server.assert_running("the iperf3 server under joyride");
            let mut c = net.peer(&iperf3);
            c.args([
                "-c",
                &net.ip,
                "-p",
                "5202",
                "-t",
                "3",
                "--json",
                "--connect-timeout",
                "1000",
            ]);
            if reverse {
                c.arg("-R");
            }
            let ran = run(c, SHORT);
            let out = ran.out();
            if out.contains("unable to connect") || out.contains("Connection refused") || out.contains("timed out") {
                last = out;
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            ran.assert_ok("iperf3 client in the peer namespace");
            iperf3_ok(if reverse { "server -R" } else { "server" }, &out);
            done = true;
            break;
        }
        assert!(done, "the iperf3 server under joyride never answered:\n{last}");
        net.assert_no_kernel_socket(5202);
    }
    let ran = server.stop("TERM", net.kernel, SHORT);
    net.assert_stats(&ran.stderr, &[Served::PassiveOpens]);
}

/// 7. DNS over UDP: dig and busybox nslookup under Joyride ask dnsmasq in
///    the peer namespace.
#[test]
fn dns_dig_and_busybox_nslookup() {
    let net = ExecNet::new();
    let dir = TempDir::new();
    let answer = format!("10.99.{}.7", net.x);
    let answer6 = format!("fd99:{}::7", net.x);
    let mut c = net.peer(need("dnsmasq"));
    c.args([
        "--no-daemon",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        "--port=53",
        "--user=root",
    ])
    .arg(format!("--address=/joyride.test/{answer}"))
    .arg(format!("--address=/joyride.test/{answer6}"))
    .arg(format!("--listen-address={}", net.peer_ip))
    .arg(format!("--pid-file={}", s(&dir.path("dnsmasq.pid"))));
    let _dnsmasq = Program::spawn(c, Stdio::null());
    net.wait_peer_listen(53, true);

    let mut dig = net.under_joyride(need("dig"));
    dig.arg(format!("@{}", net.peer_ip))
        .args(["joyride.test", "+short", "+time=3", "+tries=3"]);
    let ran = net.run_watched(dig, SHORT);
    ran.assert_ok("dig");
    assert_eq!(ran.out().trim(), answer, "dig: {}", ran.describe());
    net.assert_stats(&ran.stderr, &[Served::Udp]);

    let mut ns = net.under_joyride(need("busybox"));
    ns.args(["nslookup", "joyride.test", &net.peer_ip]);
    let ran = net.run_watched(ns, SHORT);
    ran.assert_ok("busybox nslookup");
    for a in [&answer, &answer6] {
        assert!(
            ran.out()
                .lines()
                .any(|l| l.starts_with("Address") && l.ends_with(a.as_str())),
            "nslookup: no {a}: {}",
            ran.describe()
        );
    }
    net.assert_stats(&ran.stderr, &[Served::Udp]);
}

/// The "requests per second" figure of `redis-benchmark -q` for `test`.
fn redis_rps(out: &str, test: &str) -> f64 {
    out.split(['\r', '\n'])
        .filter(|l| l.contains("requests per second"))
        .find_map(|l| l.strip_prefix(&format!("{test}: ")))
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {test} figure in redis-benchmark's output:\n{out}"))
}

/// 8. redis-server under Joyride answers redis-benchmark (SET and GET).
#[test]
fn redis_server_benchmark() {
    let net = ExecNet::new();
    let dir = TempDir::new();
    let mut c = net.under_joyride(need("redis-server"));
    c.args([
        "--port",
        "6390",
        "--bind",
        &net.ip,
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "no",
        "--daemonize",
        "no",
        "--dir",
        s(&dir.0),
    ]);
    let mut server = Program::spawn(c, Stdio::null());
    net.wait_served(&mut server, 6390, 20);
    net.assert_no_kernel_socket(6390);
    let mut bench = net.peer(need("redis-benchmark"));
    bench.args([
        "-h", &net.ip, "-p", "6390", "-n", "20000", "-c", "20", "-q", "-t", "set,get",
    ]);
    let ran = run(bench, Duration::from_secs(60));
    ran.assert_ok("redis-benchmark");
    let out = ran.out();
    let (set, get) = (redis_rps(&out, "SET"), redis_rps(&out, "GET"));
    assert!(set > 0.0 && get > 0.0, "SET {set} GET {get} requests/s");
    eprintln!("redis: SET {set} GET {get} requests/s");
    net.assert_no_kernel_socket(6390);
    let ran = server.stop("TERM", net.kernel, SHORT);
    net.assert_stats(&ran.stderr, &[Served::PassiveOpens]);
}

/// 9. The socket API's corner cases (tests/programs/exec_corners.c) against
///    a kernel peer: every case passes.
#[test]
fn socket_api_corner_cases() {
    let net = ExecNet::new();
    let dir = TempDir::new();
    let prog = build_c(&dir, "exec_corners.c", &[]);
    let mut peer = Program::spawn(net.peer_py("corners", &[&net.peer_ip, "7000"]), Stdio::null());
    peer.wait_stdout("listening", SHORT);
    let mut c = net.under_joyride(&prog);
    c.args([&net.peer_ip, "7000", "7001", &net.ip, "7002"]);
    let ran = net.run_watched(c, Duration::from_secs(90));
    let out = ran.out();
    eprintln!("{out}");
    let cases = out.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(
        ran.status.success() && out.contains("PASSED") && cases == 13,
        "corner cases failed ({cases} ok):\n{}",
        ran.describe()
    );
    net.assert_stats(&ran.stderr, &[Served::ActiveOpens, Served::PassiveOpens, Served::Udp]);
}

/// 10. 10,000 sequential TCP connections from a client under Joyride: the
///     supervisor's open fds stay constant and its memory does not grow.
#[test]
fn ten_thousand_connections_no_leak() {
    let net = ExecNet::new();
    let dir = TempDir::new();
    let prog = build_c(&dir, "exec_churn.c", &[]);
    let mut peer = Program::spawn(net.peer_py("churn", &[&net.peer_ip, "7100"]), Stdio::null());
    peer.wait_stdout("listening", SHORT);
    let mut c = net.under_joyride(&prog);
    c.args([&net.peer_ip, "7100", "10000", "1000"]);
    let mut client = Program::spawn(c, Stdio::piped());
    // `ip netns exec` execs joyride: the child's pid is the supervisor's
    // (in kernel mode, the client's own).
    let pid = client.child.id();
    let go_on = |client: &mut Program| {
        use std::io::Write;
        client
            .stdin
            .as_mut()
            .expect("stdin")
            .write_all(b"g")
            .expect("resume the client");
    };
    client.wait_stdout("at 1000\n", Duration::from_secs(60));
    let (fds1, rss1) = (fd_count(pid), rss_kib(pid));
    go_on(&mut client);
    client.wait_stdout("at 10000\n", Duration::from_secs(240));
    let (fds2, rss2) = (fd_count(pid), rss_kib(pid));
    go_on(&mut client);
    let ran = client.wait_timeout(SHORT).expect("the client ends");
    ran.assert_ok("10,000 connections");
    assert!(ran.out().contains("done 10000"), "{}", ran.describe());
    eprintln!("after 1,000: {fds1} fds, {rss1} KiB; after 10,000: {fds2} fds, {rss2} KiB");
    assert!(fds1.abs_diff(fds2) <= 2, "open fds went from {fds1} to {fds2}");
    assert!(
        rss2 < rss1 + 8 * 1024,
        "RSS grew by {} KiB ({rss1} -> {rss2})",
        rss2.saturating_sub(rss1)
    );
    if let Some(st) = net.assert_stats(&ran.stderr, &[Served::ActiveOpens]) {
        assert!(st.get("tcp_active_opens") >= 10_000, "{:?}", st);
    }
}

/// 12. Loopback stays with the kernel. A server under Joyride listening on
///     the wildcard address answers both through the user-space stack (from
///     the peer) and on the target namespace's loopback (Joyride mirrors the
///     listener there); a client under Joyride reaches a kernel server on
///     127.0.0.1 through a kernel socket, which `--stats` counts.
#[test]
fn loopback_stays_with_the_kernel() {
    let net = ExecNet::new();
    let dir = TempDir::new();
    let want = random_file(&dir.path("file"), 1 << 20, 12);

    let mut c = net.under_joyride(PYTHON);
    c.args([
        "-m",
        "http.server",
        "8084",
        "--bind",
        "0.0.0.0",
        "--directory",
        s(&dir.0),
    ]);
    let mut server = Program::spawn(c, Stdio::null());
    net.wait_served(&mut server, 8084, 20);
    let ways = [
        ("peer", net.peer(need("curl")), net.ip.clone()),
        ("loopback", net.target(need("curl")), "127.0.0.1".to_owned()),
    ];
    for (who, mut curl, host) in ways {
        let got = dir.path(who);
        curl.args(["-sS", "--fail", "--max-time", "20", "-o", s(&got)])
            .arg(format!("http://{host}:8084/file"));
        run(curl, SHORT).assert_ok(who);
        assert_eq!(sha256_file(&got), want, "{who}: the server sent another body");
    }
    let ran = server.stop("INT", net.kernel, SHORT);
    if !net.kernel {
        let st = Stats::parse(&ran.stderr).unwrap_or_else(|| panic!("no stats: {}", ran.describe()));
        assert!(
            st.get("tcp_passive_opens") >= 1,
            "the stack served no connection: {st:?}"
        );
        assert_eq!(
            st.get("sockets_kernel"),
            1,
            "the loopback connection is the kernel's: {st:?}"
        );
    }

    let mut kserver = net.target(PYTHON);
    kserver.args([
        "-m",
        "http.server",
        "8085",
        "--bind",
        "127.0.0.1",
        "--directory",
        s(&dir.0),
    ]);
    let _kserver = Program::spawn(kserver, Stdio::null());
    let mut c = net.under_joyride(need("curl"));
    let got = dir.path("from-kernel");
    c.args([
        "-sS",
        "--fail",
        "--max-time",
        "20",
        "--retry",
        "20",
        "--retry-connrefused",
        "--retry-delay",
        "0",
        "-o",
        s(&got),
        "http://127.0.0.1:8085/file",
    ]);
    let ran = run(c, SHORT);
    ran.assert_ok("curl to the kernel's loopback");
    assert_eq!(sha256_file(&got), want, "the kernel server sent another body");
    if !net.kernel {
        let st = Stats::parse(&ran.stderr).unwrap_or_else(|| panic!("no stats: {}", ran.describe()));
        assert!(
            st.get("sockets_kernel") >= 1,
            "127.0.0.1 was not handed to the kernel: {st:?}"
        );
        assert_eq!(st.get("tcp_active_opens"), 0, "the stack opened a connection: {st:?}");
    }
}

/// 11. The embedded default network (no `--nic`): in a fresh namespace,
///     joyride creates `joyride0` (10.77.0.1 kernel, 10.77.0.2 stack) and
///     curl under it reaches a kernel server on 10.77.0.1.
#[test]
fn embedded_default_network() {
    assert!(
        !joyride_tests::exec::kernel_mode(),
        "the embedded network is made by joyride exec itself: this test has no kernel-mode run \
         (JOYRIDE_EXEC_ON_KERNEL=1 ... -- --skip embedded_default_network)"
    );
    joyride_tests::exec::require_exec();
    let ns = Netns::new();
    let dir = TempDir::new();
    let want = random_file(&dir.path("file"), 1 << 20, 7);
    let mut c = ns.cmd(PYTHON);
    c.args([
        "-m",
        "http.server",
        "8080",
        "--bind",
        "0.0.0.0",
        "--directory",
        s(&dir.0),
    ]);
    let _server = Program::spawn(c, Stdio::null());
    let got = dir.path("got");
    let mut c = ns.cmd(joyride());
    c.args(["exec", "--stats", "--"]).arg(need("curl")).args([
        "-sS",
        "--fail",
        "--retry",
        "20",
        "--retry-connrefused",
        "--retry-all-errors",
        "--retry-delay",
        "0",
        "--connect-timeout",
        "2",
        "--max-time",
        "20",
        "-o",
        s(&got),
        "http://10.77.0.1:8080/file",
    ]);
    let ran = run(c, Duration::from_secs(60));
    ran.assert_ok("curl on the embedded network");
    assert_eq!(sha256_file(&got), want, "curl got another body");
    let stats =
        joyride_tests::exec::Stats::parse(&ran.stderr).unwrap_or_else(|| panic!("no stats block:\n{}", ran.describe()));
    assert!(stats.get("tcp_active_opens") > 0, "{}", ran.stderr);
    assert_eq!(stats.get("sockets_kernel"), 0, "{}", ran.stderr);

    // Two cores: the embedded network's port gets two queue pairs
    // (net_af_packet: DPDK 22.11's net_af_xdp drives one queue of a veth),
    // and both stack instances carry connections.
    let prog = program_source("exec_shards.py");
    let mut c = ns.cmd(PYTHON);
    c.arg("-u").arg(&prog).args(["server", "0.0.0.0", "7300"]);
    let mut echo = Program::spawn(c, Stdio::null());
    echo.wait_stdout("listening", SHORT);
    let mut c = ns.cmd(joyride());
    c.args(["exec", "--cores", "2", "--stats", "--", PYTHON])
        .arg(&prog)
        .args(["client", "10.77.0.1", "7300", "4", "25", "16384"]);
    let ran = run(c, Duration::from_secs(90));
    ran.assert_ok("100 connections on two shards of the embedded network");
    assert_eq!(ran.out().trim(), "ok 100", "{}", ran.describe());
    let stats =
        joyride_tests::exec::Stats::parse(&ran.stderr).unwrap_or_else(|| panic!("no stats block:\n{}", ran.describe()));
    assert_eq!(stats.get("shards"), 2, "{}", ran.stderr);
    for k in 0..2 {
        assert!(stats.get(&format!("shard{k}_tcp_active_opens")) > 0, "{}", ran.stderr);
    }
    assert_eq!(stats.get("sockets_kernel"), 0, "{}", ran.stderr);
}

/// 14. A restarted program meets its old connections' TIME_WAIT. The peer
///     closes first, so it keeps each connection in TIME_WAIT for a minute;
///     Linux lets a new SYN on the same 4-tuple in only if its sequence
///     number or timestamp is newer. Eight `joyride exec` runs in a row
///     connect from the same local port: every one must connect at once
///     (a stack whose ISN and timestamps restart with it is answered with
///     an ACK, resets, and retries a second later, three runs in four).
#[test]
fn restarted_client_reuses_port_in_peer_time_wait() {
    let net = ExecNet::new();
    let mut peer = Program::spawn(net.peer_py("churn", &[&net.peer_ip, "7101"]), Stdio::null());
    peer.wait_stdout("listening", SHORT);
    let script = format!(
        "import socket, time\n\
         s = socket.socket()\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('0.0.0.0', 40123))\n\
         t = time.monotonic()\n\
         s.connect(('{}', 7101))\n\
         dt = time.monotonic() - t\n\
         assert s.recv(1) == b'k'\n\
         assert s.recv(1) == b''\n\
         s.close()\n\
         print('connect_s=%.4f' % dt)\n",
        net.peer_ip
    );
    for run_no in 1..=8 {
        let mut c = net.under_joyride(PYTHON);
        c.args(["-c", &script]);
        let ran = run(c, SHORT);
        ran.assert_ok(&format!("client run {run_no}"));
        let secs: f64 = ran
            .out()
            .split_whitespace()
            .find_map(|w| w.strip_prefix("connect_s=")?.parse().ok())
            .unwrap_or_else(|| panic!("run {run_no}: no connect time: {}", ran.describe()));
        assert!(
            secs < 0.5,
            "run {run_no}: connect from the same port as the previous run took {secs} s (SYN refused by the \
             peer's TIME_WAIT?)\n{}",
            ran.describe()
        );
        if let Some(st) = net.assert_stats(&ran.stderr, &[Served::ActiveOpens]) {
            assert_eq!(st.get("tcp_resets_sent"), 0, "run {run_no}: {}", ran.stderr);
        }
    }
}

/// `--cores 2`: two stack instances, each on its own queue of a two-queue
/// veth, sharing the address and the port space. A client under Joyride
/// opens 8 x 40 connections at once (half with non-blocking connects), each
/// echoing 64 KiB off a kernel server, every byte compared; both shards carry
/// connections. A server under Joyride answers the peer's connections, and
/// UDP works, on the same two-shard stack.
#[test]
fn two_shards_share_one_address() {
    let net = ExecNet::with_cores(2);
    let prog = program_source("exec_shards.py");
    let peer_py = |args: &[&str]| {
        let mut c = net.peer(PYTHON);
        c.arg("-u").arg(&prog).args(args);
        let mut p = Program::spawn(c, Stdio::null());
        p.wait_stdout("listening", SHORT);
        p
    };
    let _echo = peer_py(&["server", &net.peer_ip, "7200"]);
    let _udp = peer_py(&["udpecho", &net.peer_ip, "7201"]);

    let mut c = net.under_joyride(PYTHON);
    c.arg(&prog).args(["client", &net.peer_ip, "7200", "8", "40", "65536"]);
    let ran = net.run_watched(c, LONG);
    ran.assert_ok("320 connections on two shards");
    assert_eq!(ran.out().trim(), "ok 320", "{}", ran.describe());
    if let Some(st) = net.assert_stats(&ran.stderr, &[Served::ActiveOpens]) {
        assert_eq!(st.get("shards"), 2, "{}", ran.stderr);
        assert_eq!(st.get("tcp_active_opens"), 320, "{}", ran.stderr);
        for k in 0..2 {
            let opens = st.get(&format!("shard{k}_tcp_active_opens"));
            assert!(
                (80..=240).contains(&opens),
                "shard {k} opened {opens} of 320 connections\n{}",
                ran.stderr
            );
        }
        assert_eq!(st.get("tcp_resets_sent"), 0, "{}", ran.stderr);
    }

    let mut c = net.under_joyride(PYTHON);
    c.arg(&prog).args(["udp", &net.peer_ip, "7201", "200"]);
    let ran = net.run_watched(c, SHORT);
    ran.assert_ok("UDP on two shards");
    assert_eq!(ran.out().trim(), "udp ok 200", "{}", ran.describe());

    let mut c = net.under_joyride(PYTHON);
    c.arg("-u").arg(&prog).args(["server", "0.0.0.0", "7202"]);
    let mut server = Program::spawn(c, Stdio::null());
    net.wait_served(&mut server, 7202, 20);
    let mut client = net.peer(PYTHON);
    client.arg(&prog).args(["client", &net.ip, "7202", "4", "25", "65536"]);
    let peer_ran = run(client, LONG);
    peer_ran.assert_ok("the peer's 100 connections to a server on two shards");
    assert_eq!(peer_ran.out().trim(), "ok 100", "{}", peer_ran.describe());
    let ran = server.stop("INT", net.kernel, SHORT);
    if let Some(st) = net.assert_stats(&ran.stderr, &[Served::PassiveOpens]) {
        assert!(st.get("tcp_passive_opens") >= 100, "{}", ran.stderr);
    }
}

/// The harness' own check of `--stats` blocks (runs in both modes).
#[test]
fn stats_block_parses() {
    use joyride_tests::exec::{check_stats, STATS_KEYS};
    let block = |kernel: u64, passive: u64| {
        let mut b = String::from("program output\njoyride stats:\n");
        for k in STATS_KEYS {
            let v = match *k {
                "sockets_kernel" => kernel,
                "tcp_passive_opens" => passive,
                _ => 5,
            };
            b += &format!("  {k} {v}\n");
        }
        b + "later noise\n"
    };
    assert!(check_stats(&block(0, 1), &[Served::PassiveOpens, Served::ActiveOpens, Served::Udp]).is_ok());
    assert!(check_stats(&block(1, 1), &[]).is_err(), "sockets_kernel 1 accepted");
    assert!(
        check_stats(&block(0, 0), &[Served::PassiveOpens]).is_err(),
        "no passive open accepted"
    );
    assert!(check_stats("no block\n", &[]).is_err());
    assert!(
        check_stats("joyride stats:\n  rx_frames 1\n", &[]).is_err(),
        "missing keys accepted"
    );
    let st = joyride_tests::exec::Stats::parse(
        "curl: noise\njoyride stats:\n  rx_frames 10\n  tx_frames 12\n  sockets_kernel 0\nafter\n",
    )
    .expect("block");
    assert_eq!(st.get("rx_frames"), 10);
    assert_eq!(st.get("tx_frames"), 12);
    assert_eq!(st.0.len(), 3);
    assert!(program_source("exec_peer.py").exists());
}

/// The harness never hangs: a program past its time limit is killed (with
/// its process group) and the test fails promptly.
#[test]
fn harness_kills_on_timeout() {
    let start = std::time::Instant::now();
    let mut c = std::process::Command::new("sh");
    c.args(["-c", "sleep 30 & sleep 30"]);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(c, Duration::from_millis(500))));
    assert!(r.is_err(), "a 30 s program ran within 0.5 s");
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
}
