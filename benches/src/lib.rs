//! Benchmarks of Joyride side by side with the kernel stack: shared helpers
//! for the benchmark binaries (tool lookup, C helper compilation, running
//! and timing programs, statistics).
//!
//! The binaries are benchmarks, not tests: they measure and print, and only
//! fail when something needed is missing or a measured program fails.

#![deny(unsafe_code)]

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

pub mod net;
pub mod report;

/// Finds an executable named `name` in `$PATH`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

/// Whether `path` is a regular file with an execute bit set.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(m) => m.is_file() && m.permissions().mode() & 0o111 != 0,
        Err(_) => false,
    }
}

/// Looks a required tool up in `$PATH`, with an error saying what it is for.
pub fn require_tool(name: &str, why: &str) -> anyhow::Result<PathBuf> {
    find_in_path(name).with_context(|| format!("`{name}` not found in PATH: it is needed {why}; install it"))
}

/// A directory removed (with its contents) when dropped.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a fresh directory under the system temporary directory whose
    /// name starts with `prefix`.
    pub fn new(prefix: &str) -> anyhow::Result<TempDir> {
        let base = std::env::temp_dir();
        for attempt in 0..100u32 {
            let path = base.join(format!("{prefix}.{}.{attempt}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(TempDir { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
            }
        }
        bail!("cannot create a temporary directory under {}", base.display())
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Compiles one C source (given as text) with `gcc -O2` into `dir/name`.
pub fn compile_c(gcc: &Path, dir: &Path, name: &str, source: &str) -> anyhow::Result<PathBuf> {
    let src = dir.join(format!("{name}.c"));
    let exe = dir.join(name);
    std::fs::write(&src, source).with_context(|| format!("cannot write {}", src.display()))?;
    let out = Command::new(gcc)
        .args(["-O2", "-Wall", "-Wextra", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .with_context(|| format!("cannot run {}", gcc.display()))?;
    if !out.status.success() {
        bail!(
            "gcc failed on {name}.c ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(exe)
}

/// What one finished run of a measured program gave.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Wall-clock time from spawn to exit, as seen by the benchmark.
    pub wall: Duration,
    /// The program's standard output.
    pub stdout: String,
    /// The program's standard error.
    pub stderr: String,
}

impl RunOutput {
    /// The value of the first `key=value` field on standard output, parsed.
    pub fn field<T: std::str::FromStr>(&self, key: &str) -> anyhow::Result<T> {
        let prefix = format!("{key}=");
        for word in self.stdout.split_whitespace() {
            if let Some(v) = word.strip_prefix(&prefix) {
                return v
                    .parse()
                    .map_err(|_| anyhow::anyhow!("cannot parse `{key}={v}` in the program's output"));
            }
        }
        bail!("no `{key}=` in the program's output: {:?}", self.stdout)
    }
}

/// Runs `cmd` to completion, timing it; fails with its standard error if it
/// does not exit with status 0.
pub fn run_timed(cmd: &mut Command) -> anyhow::Result<RunOutput> {
    let shown = show(cmd);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let out = cmd.output().with_context(|| format!("cannot run {shown}"))?;
    let wall = start.elapsed();
    if !out.status.success() {
        bail!(
            "{shown} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(RunOutput {
        wall,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// A command line for error messages.
pub fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// A background process killed and reaped when dropped.
#[derive(Debug)]
pub struct Background {
    child: Child,
}

impl Background {
    /// Starts `program` with standard output piped and reads its first line.
    pub fn start_reading_line(program: &Path, args: &[&OsStr]) -> anyhow::Result<(Background, String)> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let mut stdout = child.stdout.take().context("no stdout pipe")?;
        let mut bg = Background { child };
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            match stdout.read(&mut byte) {
                Ok(0) => {
                    let status = bg.child.wait().ok();
                    bail!("{} exited before saying anything ({status:?})", program.display());
                }
                Ok(_) if byte[0] == b'\n' => break,
                Ok(_) => line.push(byte[0]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("reading a background program's output"),
            }
        }
        // Keep the pipe open (the program may print more); it is closed on drop.
        bg.child.stdout = Some(stdout);
        Ok((bg, String::from_utf8_lossy(&line).into_owned()))
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Summary statistics of a set of samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// The median (mean of the two middle samples for an even count).
    pub median: f64,
    /// The smallest sample.
    pub min: f64,
    /// The largest sample.
    pub max: f64,
}

impl Stats {
    /// Statistics of `samples`; panics if there are none.
    pub fn of(samples: &[f64]) -> Stats {
        assert!(!samples.is_empty(), "no samples");
        let mut v = samples.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Stats {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }

    /// As JSON, with the samples themselves.
    pub fn to_json(self, samples: &[f64]) -> serde_json::Value {
        serde_json::json!({
            "median": self.median,
            "min": self.min,
            "max": self.max,
            "samples": samples,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_and_even() {
        assert_eq!(Stats::of(&[3.0, 1.0, 2.0]).median, 2.0);
        assert_eq!(Stats::of(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
        let s = Stats::of(&[5.0, -1.0]);
        assert_eq!((s.min, s.max), (-1.0, 5.0));
    }

    #[test]
    fn fields() {
        let out = RunOutput {
            wall: Duration::ZERO,
            stdout: "elapsed_ns=123 cycles=5\n".into(),
            stderr: String::new(),
        };
        assert_eq!(out.field::<u64>("elapsed_ns").unwrap(), 123);
        assert_eq!(out.field::<u64>("cycles").unwrap(), 5);
        assert!(out.field::<u64>("nope").is_err());
    }
}
