//! `joyride exec`: a program's Internet sockets served by the user-space
//! stack.

mod net;

use crate::cli::ExecArgs;

/// Runs `joyride exec`; returns the exit code.
pub fn run(args: ExecArgs) -> anyhow::Result<i32> {
    let _ = args;
    anyhow::bail!("joyride exec is not implemented yet")
}
