//! The listener against real processes: answering with an fd at a chosen
//! number (ADDFD with SEND and SETFD), answering with an errno, and ID_VALID
//! once the caller is gone.

use std::ffi::OsString;
use std::os::fd::AsFd;

use joyride_notify::{spawn, AddFd, Filter, FilterSpec, Mode, NetCall, Syscall};

fn python(code: &str) -> Vec<OsString> {
    ["python3", "-c", code].iter().map(OsString::from).collect()
}

fn filter(calls: &[NetCall]) -> Filter {
    Filter::build(&FilterSpec {
        mode: Mode::Trace {
            calls: Some(calls.to_vec()),
        },
        allow_io_uring: false,
    })
    .unwrap()
}

/// Waits up to a minute for the child (then kills it, so a failing test
/// fails instead of hanging); returns its exit code (-1 if killed) and what
/// it wrote to `out`.
fn wait_output(child: joyride_notify::Child, out: std::path::PathBuf) -> (i32, String) {
    let pid = rustix::process::Pid::from_raw(child.pid);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let st = loop {
        if let Some(st) = rustix::process::waitpid(pid, rustix::process::WaitOptions::NOHANG).unwrap() {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = rustix::process::kill_process(pid.unwrap(), rustix::process::Signal::Kill);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    (st.exit_status().map(|c| c as i32).unwrap_or(-1), text)
}

/// Runs `code` with `out` bound to a file it may write its result to.
/// The next call of the Python program itself. `python3` may be a launcher
/// script (pyenv's shim) whose shell looks users up through nscd when the
/// environment is sparse: its AF_UNIX sockets and their connects are let
/// through untouched.
fn next_python_call(listener: &joyride_notify::Listener) -> joyride_notify::Notification {
    loop {
        let notif = listener.recv().unwrap();
        let sc = Syscall::from_raw(NetCall::from_nr(notif.nr as i64).unwrap(), &notif.args);
        let launcher = match &sc {
            Syscall::Socket(s) => s.domain == libc::AF_UNIX,
            Syscall::Connect(_) => true,
            _ => false,
        };
        if !launcher {
            return notif;
        }
        notif.answer_continue().unwrap();
    }
}

fn launch(code: &str, calls: &[NetCall]) -> (joyride_notify::Child, joyride_notify::Listener, std::path::PathBuf) {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("jr-notify-{}-{n}", std::process::id()));
    let code = format!("out=open({:?},'w')\n{code}", path.to_str().unwrap());
    let (child, listener, flags) = spawn(&python(&code), &filter(calls)).unwrap();
    assert!(
        flags.wait_killable,
        "this kernel has SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
    );
    (child, listener, path)
}

#[test]
fn answers_socket_with_an_fd_at_a_chosen_number() {
    let (child, listener, out) = launch(
        "import socket; s=socket.socket(); print(s.fileno(), s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE), file=out)",
        &[NetCall::Socket],
    );
    let notif = next_python_call(&listener);
    assert!(notif.is_native());
    let sc = Syscall::from_raw(NetCall::from_nr(notif.nr as i64).unwrap(), &notif.args);
    let Syscall::Socket(s) = sc else { panic!("{sc}") };
    assert_eq!(s.domain, libc::AF_INET);
    let ours = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let n = notif
        .answer_with_fd(
            ours.as_fd(),
            AddFd {
                cloexec: true,
                at: Some(42),
            },
        )
        .unwrap();
    assert_eq!(n, 42);
    let (code, text) = wait_output(child, out);
    assert_eq!(code, 0);
    // The program got fd 42, and it is the UDP socket we installed.
    assert_eq!(text.trim(), format!("42 {}", libc::SOCK_DGRAM));
}

#[test]
fn answers_with_an_errno() {
    let code =
        "import socket,errno\ntry:\n socket.socket()\nexcept OSError as e: print(errno.errorcode[e.errno], file=out)";
    let (child, listener, out) = launch(code, &[NetCall::Socket]);
    // Linux 6.6+ (CI runs 6.18) has synchronous wake-ups; the flag is taken.
    assert_eq!(
        listener.set_sync_wake_up().unwrap(),
        joyride_notify::SyncWakeUp::Enabled
    );
    let notif = next_python_call(&listener);
    notif.answer_errno(libc::EAFNOSUPPORT).unwrap();
    assert_eq!(wait_output(child, out).1.trim(), "EAFNOSUPPORT");
}

#[test]
fn reads_target_memory_once_and_sees_the_caller_vanish() {
    let code =
        "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'payload', ('127.0.0.1', 9))";
    let (child, listener, out) = launch(code, &[NetCall::Sendto]);
    let notif = next_python_call(&listener);
    let Syscall::Sendto(c) = Syscall::from_raw(NetCall::Sendto, &notif.args) else {
        panic!()
    };
    assert_eq!(notif.read_bytes(c.buf, c.len, 64).unwrap(), b"payload");
    assert!(matches!(
        notif.read_bytes(c.buf, 100, 64),
        Err(joyride_notify::MemError::TooLong { .. })
    ));
    assert_eq!(notif.read_bytes(8, 4, 64), Err(joyride_notify::MemError::Fault));
    // Kill the caller while we hold its call: the id is no longer valid and
    // reads report it gone.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.pid).unwrap(),
        rustix::process::Signal::Kill,
    )
    .unwrap();
    let (code, _) = wait_output(child, out);
    assert_eq!(code, -1);
    assert!(!notif.is_valid());
    assert_eq!(notif.read_bytes(c.buf, c.len, 64), Err(joyride_notify::MemError::Gone));
    notif.abandon();
}
