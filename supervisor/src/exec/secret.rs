//! The stack's TCP secret (RFC 6528), the same for every `joyride exec` of
//! one boot.
//!
//! A kernel peer that closed a connection first keeps it in TIME_WAIT for
//! a minute and accepts a new SYN on the same 4-tuple only if its sequence
//! number or timestamp is newer than the old connection's (Linux
//! `tcp_timewait_state_process`). Within one stack that holds: ISNs and
//! timestamps grow with the clock. Across two `joyride exec` runs it holds
//! only if both use the same secret and a clock that did not restart: with
//! a fresh random secret per run, a quarter of the SYNs that meet an old
//! TIME_WAIT are answered with an ACK, reset, and retried a second later.
//! So the secret is made once per boot, kept where only root reads it, on
//! a tmpfs that the next boot empties — as the kernel keeps its own secret
//! for as long as it runs.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Where the secret lives (tmpfs on Debian: emptied at boot).
pub const SECRET_PATH: &str = "/run/joyride/tcp-secret";

/// The secret of this boot, made on first use.
pub fn boot_secret() -> Result<[u8; 16]> {
    secret_at(Path::new(SECRET_PATH))
}

/// The secret kept at `path`, made (16 random bytes, mode 0600, directory
/// 0700) if there is none. Refuses a file that others could read or write
/// or that root does not own.
pub fn secret_at(path: &Path) -> Result<[u8; 16]> {
    if let Some(dir) = path.parent() {
        match std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
        }
    }
    let mut fresh = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut fresh))
        .context("cannot read /dev/urandom for the TCP secret")?;
    // Whoever creates the file first wins; everyone else reads theirs.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut f) => {
            f.write_all(&fresh)
                .and_then(|()| f.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            return Ok(fresh);
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.uid() != rustix::process::geteuid().as_raw() || meta.permissions().mode() & 0o077 != 0 {
        bail!(
            "{} must belong to this user with mode 0600 (it holds the TCP secret); remove it and run again",
            path.display()
        );
    }
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    // A file being written by another joyride at this very moment may still
    // be short: then use a fresh secret for this run rather than wait.
    Ok(<[u8; 16]>::try_from(data.as_slice()).unwrap_or(fresh))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_kept() {
        let dir = std::env::temp_dir().join(format!("joyride-secret-test-{}", std::process::id()));
        let path = dir.join("sub").join("tcp-secret");
        let a = secret_at(&path).unwrap();
        let b = secret_at(&path).unwrap();
        assert_eq!(a, b, "the second run must read the first run's secret");
        assert_ne!(a, [0; 16]);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777;
        assert_eq!(dmode, 0o700);
        // Readable by others: refused, with the path in the message.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = format!("{:#}", secret_at(&path).unwrap_err());
        assert!(e.contains("tcp-secret") && e.contains("0600"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
