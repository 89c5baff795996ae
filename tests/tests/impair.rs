//! `joyride-impair` between two Linux kernels: the impairments a user would
//! check with ping and a bulk TCP transfer (delay, loss, rate, and TCP
//! surviving loss, reordering, duplication and corruption intact).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use joyride_tests::{impair_counter, text, ImpairedNet, TempDir};

/// `ping ARGS` from `a` to `b`: (transmitted, received, rtt min, rtt avg)
/// in milliseconds.
fn ping(net: &ImpairedNet, args: &[&str]) -> (u64, u64, f64, f64) {
    let out = net.a("ping").args(args).arg(&net.b_ip).output().expect("ping");
    let (stdout, stderr) = text(&out);
    let count = |suffix: &str| -> u64 {
        stdout
            .split(',')
            .find_map(|p| p.trim().strip_suffix(suffix))
            .and_then(|n| n.split_whitespace().last()?.parse().ok())
            .unwrap_or_else(|| panic!("no {suffix:?} in ping's output:\n{stdout}{stderr}"))
    };
    let (tx, rx) = (count("packets transmitted"), count("received"));
    // rtt min/avg/max/mdev = 40.157/40.753/41.887/0.186 ms
    let rtt: Vec<f64> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("rtt min/avg/max/mdev = "))
        .map(|v| {
            v.trim_end_matches(" ms")
                .split('/')
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    (
        tx,
        rx,
        rtt.first().copied().unwrap_or(0.0),
        rtt.get(1).copied().unwrap_or(0.0),
    )
}

/// Deterministic bytes that differ everywhere (xorshift64).
fn payload(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Waits until something listens on TCP `port` in `ns`.
fn wait_listen(ns: &str, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let needle = format!(":{port} ");
    while Instant::now() < deadline {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "ss", "-Htln"])
            .output()
            .expect("ss");
        if String::from_utf8_lossy(&out.stdout).contains(&needle) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on port {port} in {ns}");
}

/// Sends `data` over one kernel TCP connection from `a` to `b` (socat),
/// checks that `b` received exactly `data`, and returns how long it took,
/// from the sender's start to the receiver's end of file.
fn transfer(net: &ImpairedNet, data: &[u8]) -> Duration {
    let dir = TempDir::new();
    let (src, dst) = (dir.path("src"), dir.path("dst"));
    std::fs::write(&src, data).unwrap();
    let port = 5001;
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    let mut rx = net
        .b("timeout")
        .args(["40", "socat", "-u"])
        .arg(format!("TCP-LISTEN:{port},reuseaddr,bind={}", net.b_ip))
        .arg(format!("CREATE:{}", path(&dst)))
        .stdin(Stdio::null())
        .spawn()
        .expect("socat receiver");
    wait_listen(&net.b_ns, port);
    let start = Instant::now();
    let tx = net
        .a("timeout")
        .args(["40", "socat", "-u"])
        .arg(format!("OPEN:{}", path(&src)))
        .arg(format!("TCP:{}:{port}", net.b_ip))
        .output()
        .expect("socat sender");
    let rx_status = rx.wait().expect("socat receiver");
    let took = start.elapsed();
    assert!(tx.status.success(), "sender: {}", text(&tx).1);
    assert!(rx_status.success(), "receiver: {rx_status}");
    let got = std::fs::read(&dst).unwrap();
    assert!(
        got == data,
        "{} bytes received of {}, or corrupted",
        got.len(),
        data.len()
    );
    took
}

/// Sum of the `InCsumErrors` counters (IP, TCP, UDP, ICMP) in `ns`.
fn checksum_errors(ns: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cat", "/proc/net/snmp"])
        .output()
        .expect("snmp");
    let snmp = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = snmp.lines().collect();
    lines
        .chunks(2)
        .filter_map(|pair| {
            let (names, values) = (pair.first()?, pair.get(1)?);
            let i = names.split_whitespace().position(|n| n == "InCsumErrors")?;
            values.split_whitespace().nth(i)?.parse::<u64>().ok()
        })
        .sum()
}

#[test]
fn delay_sets_the_round_trip() {
    let net = ImpairedNet::new(&["--delay", "20ms"]);
    let (tx, rx, min, avg) = ping(&net, &["-c", "10", "-i", "0.05", "-W", "2"]);
    assert_eq!((tx, rx), (10, 10));
    assert!(min >= 40.0, "rtt min {min} ms under 2 x 20 ms");
    assert!(avg < 46.0, "rtt avg {avg} ms, expected about 40 ms");
}

#[test]
fn loss_applies_to_each_direction() {
    let mut net = ImpairedNet::new(&["--loss", "10%"]);
    let (tx, rx, _, _) = ping(&net, &["-q", "-c", "1000", "-i", "0.002", "-W", "1"]);
    assert_eq!(tx, 1000);
    // A ping survives with 0.9 x 0.9 = 81 %: 190 lost, sd 12.4; 4 sd.
    let lost = tx - rx;
    assert!(
        (140..=240).contains(&lost),
        "{lost} of 1000 pings lost, expected about 190"
    );
    let report = net.stop();
    for dir in 0..2 {
        let (got, lost) = (
            impair_counter(&report, dir, "received"),
            impair_counter(&report, dir, "lost"),
        );
        assert!(got >= 800, "{report}");
        // About 10 % each way: sd about 3 %; 4 sd.
        let rate = lost as f64 / got as f64;
        assert!((0.05..=0.15).contains(&rate), "direction {dir}: {report}");
    }
}

#[test]
fn tcp_survives_loss_and_reordering() {
    let mut net = ImpairedNet::new(&[
        "--delay",
        "1ms",
        "--loss",
        "2%",
        "--reorder",
        "25%",
        "--reorder-delay",
        "1ms",
    ]);
    let data = payload(20 << 20);
    let took = transfer(&net, &data);
    let report = net.stop();
    assert!(impair_counter(&report, 0, "lost") > 100, "{report}");
    assert!(impair_counter(&report, 0, "reordered") > 1000, "{report}");
    eprintln!("20 MB in {took:?} under 2% loss and 25% reordering\n{report}");
}

#[test]
fn tcp_survives_duplication_and_corruption() {
    let mut net = ImpairedNet::new(&["--duplicate", "1%", "--corrupt", "0.1%"]);
    let data = payload(20 << 20);
    let before = checksum_errors(&net.b_ns);
    let took = transfer(&net, &data);
    let report = net.stop();
    assert!(impair_counter(&report, 0, "duplicated") > 50, "{report}");
    assert!(impair_counter(&report, 0, "corrupted") > 3, "{report}");
    // The corrupted frames reached the kernel, which caught them.
    assert!(checksum_errors(&net.b_ns) > before, "no checksum errors in b\n{report}");
    eprintln!("20 MB in {took:?} under 1% duplication and 0.1% corruption\n{report}");
}

#[test]
fn rate_caps_throughput() {
    let mut net = ImpairedNet::new(&["--rate", "100mbit"]);
    let data = payload(25 << 20);
    let took = transfer(&net, &data);
    let mbit = data.len() as f64 * 8.0 / took.as_secs_f64() / 1e6;
    // 1448 payload bytes per 1514-byte frame: at most 95.6 Mbit/s of data.
    assert!(
        (75.0..=97.0).contains(&mbit),
        "{mbit:.1} Mbit/s through a 100 Mbit/s link"
    );
    let report = net.stop();
    eprintln!("{mbit:.1} Mbit/s\n{report}");
}
