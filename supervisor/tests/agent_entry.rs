//! The hidden agent entry point of the `joyride` binary refuses to run by
//! hand (without the fds the supervisor gives it). Besides checking that,
//! this integration test makes `cargo test -p joyride` build the binary
//! that the agent unit tests start.

use std::process::{Command, Stdio};

#[test]
fn agent_entry_refuses_to_run_by_hand() {
    let out = Command::new(env!("CARGO_BIN_EXE_joyride"))
        .arg("__agent")
        .stdin(Stdio::null())
        .output()
        .expect("run joyride __agent");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not run by hand"));
}
