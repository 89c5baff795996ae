//! Packets per second through a DPDK port on a veth pair, both ways, with
//! the Linux kernel on the other end.
//!
//! ```text
//! cargo bench -p joyride-dpdk --bench af_packet_pps -- [--secs 5] [--pmd net_af_packet] [--size 64]
//! ```
//!
//! - tx: the port sends `size`-byte Ethernet/IPv4/UDP frames as fast as the
//!   PMD takes them for `secs` seconds; we report what the PMD accepted and
//!   what the kernel end of the veth counted as received.
//! - rx: this same binary, re-executed inside the namespace (`--blast`),
//!   floods frames from a raw `AF_PACKET` socket (`sendmmsg`, qdisc bypass);
//!   we report what the port delivered in `secs` seconds and what was offered.
//!
//! Needs root. A benchmark binary, not a timed test: it prints numbers and
//! asserts nothing about them.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{udp_frame, unique, Csum, Veth, DPDK_IP, KERNEL_IP, KERNEL_MAC};
use joyride_dpdk::{DpdkNic, Mempool, Port, PortConfig};
use joyride_netstack::nic::{Nic, TxMeta};

/// Command-line options.
struct Options {
    secs: f64,
    pmd: String,
    size: usize,
}

fn parse_options(args: &[String]) -> Options {
    let mut opts = Options {
        secs: 5.0,
        pmd: "net_af_packet".to_owned(),
        size: 64,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--secs" => opts.secs = it.next().and_then(|v| v.parse().ok()).expect("--secs N"),
            "--pmd" => opts.pmd = it.next().expect("--pmd NAME").clone(),
            "--size" => opts.size = it.next().and_then(|v| v.parse().ok()).expect("--size BYTES"),
            _ => {} // `cargo bench` passes `--bench`.
        }
    }
    assert!(opts.size >= 60, "--size must be at least 60 (a minimal Ethernet frame)");
    opts
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--blast") {
        blast(&args[1..]);
        return;
    }
    let opts = parse_options(&args);
    let veth = Veth::new();
    let eal = common::eal();
    let id = eal
        .probe_vdev(&format!("{},iface={}", unique(&opts.pmd), veth.host_if))
        .expect("probe");
    let pool = Mempool::new(&eal, "bench", 16383, 256, Mempool::DEFAULT_DATA_ROOM).expect("mempool");
    let mut nic = DpdkNic::new(Port::start(&eal, id, pool, &PortConfig::default()).expect("port"));
    println!(
        "{} on {} <-> kernel veth in netns {}, {}-byte frames, {} s each way",
        opts.pmd, veth.host_if, veth.ns, opts.size, opts.secs
    );
    bench_tx(&mut nic, &veth, &opts);
    bench_rx(&mut nic, &veth, &opts);
}

/// Sends as fast as the PMD accepts for `opts.secs`.
fn bench_tx(nic: &mut DpdkNic, veth: &Veth, opts: &Options) {
    let mut frame = vec![0u8; opts.size];
    udp_frame(
        &mut frame,
        nic.mac(),
        KERNEL_MAC,
        (DPDK_IP, 7001),
        (KERNEL_IP, 7000),
        &vec![0x5a; opts.size - 42],
        Csum::Full,
    );
    let burst = nic.capabilities().max_burst;
    let kernel_before = veth.ns_stat("rx_packets");
    let before = nic.counters();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(opts.secs);
    while Instant::now() < end {
        for _ in 0..burst {
            let _ = nic.transmit(frame.len(), |buf| {
                buf.copy_from_slice(&frame);
                TxMeta::default()
            });
        }
        nic.flush();
    }
    let elapsed = start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(300));
    let after = nic.counters();
    let kernel = veth.ns_stat("rx_packets") - kernel_before;
    let sent = after.tx_frames - before.tx_frames;
    let dropped = after.tx_dropped - before.tx_dropped;
    println!(
        "tx: {:>10.0} pps accepted by the PMD ({sent} frames, {dropped} refused), {:>10.0} pps received by the kernel",
        sent as f64 / elapsed,
        kernel as f64 / elapsed
    );
}

/// Has the kernel side flood the port for `opts.secs` and counts what arrives.
fn bench_rx(nic: &mut DpdkNic, veth: &Veth, opts: &Options) {
    let exe = std::env::current_exe().expect("current_exe");
    let exe = exe.to_str().expect("utf-8 path");
    let mac = common::mac_str(nic.mac());
    let secs = (opts.secs + 1.5).to_string();
    let size = opts.size.to_string();
    let mut child = veth
        .ns_command(&[exe, "--blast", &veth.ns_if, &secs, &mac, &size])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn blaster");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    assert_eq!(lines.next().expect("blaster started").expect("read"), "ready");
    // Let the flood reach a steady state, draining meanwhile.
    let warmup = Instant::now() + Duration::from_millis(500);
    while Instant::now() < warmup {
        nic.receive(32, |_, _| {});
    }
    let stats_before = nic.port().stats().expect("stats");
    let mut frames = 0u64;
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(opts.secs);
    while Instant::now() < end {
        nic.receive(32, |frame, _| {
            if frame.len() == opts.size {
                frames += 1;
            }
        });
    }
    let elapsed = start.elapsed().as_secs_f64();
    let stats = nic.port().stats().expect("stats");
    let sent_line = lines.next().and_then(Result::ok).unwrap_or_default();
    let _ = child.wait();
    let offered: f64 = sent_line
        .strip_prefix("pps ")
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    println!(
        "rx: {:>10.0} pps delivered by the PMD ({frames} frames), {:>10.0} pps offered by the kernel sender, {} missed by the PMD",
        frames as f64 / elapsed,
        offered,
        stats.rx_missed - stats_before.rx_missed
    );
}

/// `--blast IFACE SECS DST_MAC SIZE`: floods IFACE with UDP frames to DST_MAC
/// from a raw socket, then prints the rate it achieved.
fn blast(args: &[String]) {
    let [iface, secs, mac, size] = args else {
        panic!("--blast IFACE SECS DST_MAC SIZE")
    };
    let secs: f64 = secs.parse().expect("secs");
    let size: usize = size.parse().expect("size");
    let mut dst = [0u8; 6];
    for (d, p) in dst.iter_mut().zip(mac.split(':')) {
        *d = u8::from_str_radix(p, 16).expect("mac");
    }
    let mut frame = vec![0u8; size];
    udp_frame(
        &mut frame,
        KERNEL_MAC,
        dst,
        (KERNEL_IP, 7000),
        (DPDK_IP, 7001),
        &vec![0xa5; size - 42],
        Csum::Full,
    );

    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    assert!(raw >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: raw is a fresh fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let one: libc::c_int = 1;
    // SAFETY: fd is open; the option value is a c_int of the stated size.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(ret, 0, "PACKET_QDISC_BYPASS: {}", std::io::Error::last_os_error());
    let c_iface = std::ffi::CString::new(iface.as_str()).expect("iface");
    // SAFETY: c_iface is a valid C string.
    let ifindex = unsafe { libc::if_nametoindex(c_iface.as_ptr()) };
    assert!(ifindex != 0, "no interface {iface}");
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_IP as u16).to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: fd is open; sll is a valid sockaddr_ll of the stated size.
    let ret = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    assert_eq!(ret, 0, "bind: {}", std::io::Error::last_os_error());

    const BATCH: usize = 64;
    let mut iov = libc::iovec {
        iov_base: frame.as_mut_ptr().cast(),
        iov_len: frame.len(),
    };
    // SAFETY: mmsghdr is plain old data; all-zero is a valid value.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for m in &mut msgs {
        m.msg_hdr.msg_iov = &mut iov;
        m.msg_hdr.msg_iovlen = 1;
    }
    println!("ready");
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut sent = 0u64;
    while Instant::now() < end {
        // SAFETY: fd is open and bound; msgs holds BATCH headers whose iovec
        // points at `frame`, which outlives the call.
        let n = unsafe { libc::sendmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), BATCH as u32, 0) };
        if n > 0 {
            sent += n as u64;
        }
    }
    println!("pps {:.0}", sent as f64 / start.elapsed().as_secs_f64());
}
