//! `joyride-exec ARGS...` is `joyride exec ARGS...`: the `joyride` binary
//! installed next to this one runs the program.
#![deny(unsafe_code)]

use std::os::unix::process::CommandExt;
use std::process::Command;

fn main() {
    let joyride = match std::env::current_exe() {
        Ok(exe) => exe.with_file_name("joyride"),
        Err(e) => {
            eprintln!("joyride-exec: cannot find its own path: {e}");
            std::process::exit(125);
        }
    };
    let err = Command::new(&joyride)
        .arg("exec")
        .args(std::env::args_os().skip(1))
        .exec();
    eprintln!("joyride-exec: cannot run {}: {err}", joyride.display());
    std::process::exit(125);
}
