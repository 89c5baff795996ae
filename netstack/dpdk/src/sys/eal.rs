//! The Environment Abstraction Layer: initialisation and device lookup.

use std::ffi::{c_char, c_int, CString};

use crate::error::{Errno, Error};
use crate::sys::ethdev::PortId;
use crate::sys::rte_errno;

/// Arguments for [`Eal::init`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EalConfig {
    /// Program name, `argv[0]` for the EAL (it prefixes log lines).
    pub program: String,
    /// EAL arguments after the program name, e.g. `--vdev net_tap0`.
    pub args: Vec<String>,
    /// Shared libraries passed to the EAL with `-d` before [`Self::args`]:
    /// the poll-mode drivers found at build time ([`dpdk_sys::PMDS`]) unless
    /// changed. See `dpdk-sys`'s crate docs for why they are named here.
    pub plugins: Vec<String>,
}

impl EalConfig {
    /// Arguments `args` (after the program name), with the build-time PMDs
    /// as plugins.
    pub fn new<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            program: "joyride".to_owned(),
            args: args.into_iter().map(Into::into).collect(),
            plugins: dpdk_sys::PMDS.iter().map(|(_, path)| (*path).to_owned()).collect(),
        }
    }

    /// A configuration for machines without hugepages: `--no-huge -m
    /// <memory_mb>`, no shared config (`--no-shconf`, so that several
    /// processes with different `file_prefix`es coexist; `--in-memory` is
    /// refused by the EAL together with `--no-huge`), no PCI scan, no
    /// telemetry, and one lcore allowed to float over every CPU so that the
    /// calling thread is not pinned.
    pub fn no_huge(file_prefix: &str, memory_mb: u32) -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        Self::new([
            "--no-huge".to_owned(),
            "-m".to_owned(),
            memory_mb.to_string(),
            "--no-shconf".to_owned(),
            "--file-prefix".to_owned(),
            file_prefix.to_owned(),
            "--no-pci".to_owned(),
            "--no-telemetry".to_owned(),
            "--lcores".to_owned(),
            format!("0@(0-{})", cpus - 1),
        ])
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends `--vdev <devargs>`, e.g. `net_af_packet0,iface=veth0`.
    pub fn vdev(self, devargs: impl Into<String>) -> Self {
        self.arg("--vdev").arg(devargs)
    }

    /// The full argument vector handed to `rte_eal_init`.
    pub fn argv(&self) -> Vec<String> {
        let mut argv = Vec::with_capacity(1 + 2 * self.plugins.len() + self.args.len());
        argv.push(self.program.clone());
        for plugin in &self.plugins {
            argv.push("-d".to_owned());
            argv.push(plugin.clone());
        }
        argv.extend(self.args.iter().cloned());
        argv
    }
}

/// Proof that the EAL is initialised in this process.
///
/// The EAL lives until the process exits: DPDK cannot initialise it a second
/// time, so Joyride never tears it down (`rte_eal_cleanup`), and mbufs,
/// pools and ports never outlive it.
#[derive(Debug, Clone, Copy)]
pub struct Eal {
    _private: (),
}

impl Eal {
    /// Initialises the EAL (`rte_eal_init`) with `config`.
    ///
    /// The calling thread becomes the EAL's main lcore. Fails with
    /// [`Error::AlreadyInitialized`] if the EAL was already initialised in
    /// this process, by this or any other caller.
    pub fn init(config: &EalConfig) -> Result<Eal, Error> {
        let argv = config.argv();
        let mut c_args = Vec::with_capacity(argv.len() + 1);
        for arg in &argv {
            let c = CString::new(arg.as_str()).map_err(|_| Error::NulInArgument { arg: arg.clone() })?;
            c_args.push(c.into_raw());
        }
        c_args.push(std::ptr::null_mut());
        // The EAL keeps pointers into argv (and getopt permutes it), so the
        // strings and the vector live for the rest of the process: a
        // one-time leak of a few hundred bytes.
        let c_args: &'static mut [*mut c_char] = c_args.leak();
        let argc = c_int::try_from(argv.len()).map_err(|_| Error::EalInit {
            args: argv.clone(),
            errno: Errno(libc::E2BIG),
        })?;
        tracing::debug!(?argv, "rte_eal_init");
        // rte_eal_init guards itself against concurrent and repeated calls
        // (it fails with EALREADY).
        // SAFETY: argv holds argc valid NUL-terminated strings and a NULL, all
        // leaked above so they outlive every use the EAL makes of them.
        let ret = unsafe { dpdk_sys::rte_eal_init(argc, c_args.as_mut_ptr()) };
        if ret < 0 {
            let errno = rte_errno();
            if errno == libc::EALREADY {
                return Err(Error::AlreadyInitialized);
            }
            return Err(Error::EalInit {
                args: argv,
                errno: Errno(errno),
            });
        }
        // The PMDs are loaded now, with the libraries they use.
        crate::sys::bpflog::route_to_tracing();
        Ok(Eal { _private: () })
    }

    /// Every ethdev port not owned by a [`crate::Port`] (or anyone else).
    pub fn ports(&self) -> Vec<PortId> {
        let mut ports = Vec::new();
        let mut next = 0u16;
        loop {
            // SAFETY: the EAL is up (self exists); rte_eth_find_next accepts
            // any port id and returns RTE_MAX_ETHPORTS when there is no more.
            let id = unsafe { dpdk_sys::rte_eth_find_next(next) };
            if u32::from(id) >= dpdk_sys::RTE_MAX_ETHPORTS {
                return ports;
            }
            ports.push(PortId::new(id));
            next = id + 1;
        }
    }

    /// The port named `name` (for a vdev, the part of its device arguments
    /// before the first comma, e.g. `net_af_packet0`).
    pub fn port_by_name(&self, name: &str) -> Result<PortId, Error> {
        let not_found = || Error::NoSuchPort { name: name.to_owned() };
        let c_name = CString::new(name).map_err(|_| not_found())?;
        let mut id = 0u16;
        // SAFETY: the EAL is up; c_name is a valid C string and id a valid
        // out-pointer for the duration of the call.
        let ret = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(c_name.as_ptr(), &mut id) };
        if ret != 0 {
            return Err(not_found());
        }
        Ok(PortId::new(id))
    }

    /// Hot-plugs a virtual device after initialisation (`rte_dev_probe`), e.g.
    /// `net_tap1,iface=jr1`, and returns its port.
    pub fn probe_vdev(&self, devargs: &str) -> Result<PortId, Error> {
        let fail = |errno| Error::Probe {
            devargs: devargs.to_owned(),
            errno: Errno(errno),
        };
        let c = CString::new(devargs).map_err(|_| fail(libc::EINVAL))?;
        // SAFETY: the EAL is up; c is a valid C string for the call, which
        // copies what it keeps.
        let ret = unsafe { dpdk_sys::rte_dev_probe(c.as_ptr()) };
        if ret < 0 {
            return Err(fail(-ret));
        }
        let name = devargs.split(',').next().unwrap_or(devargs);
        self.port_by_name(name)
    }

    /// NUMA socket of the calling thread (`rte_socket_id`).
    pub fn socket_id(&self) -> u32 {
        // SAFETY: the EAL is up; reads per-thread state.
        unsafe { dpdk_sys::rte_socket_id() }
    }

    /// The calling thread's lcore id, or `None` for a thread the EAL does
    /// not know (`LCORE_ID_ANY`).
    pub fn lcore_id(&self) -> Option<u32> {
        // SAFETY: reads a thread-local integer.
        let id = unsafe { dpdk_sys::jr_lcore_id() };
        (id != u32::MAX).then_some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::EalConfig;

    #[test]
    fn argv_is_program_then_plugins_then_args() {
        let mut config = EalConfig::new(["--no-pci"]).vdev("net_tap0,iface=jr0");
        config.plugins = vec!["/lib/a.so".to_owned()];
        assert_eq!(
            config.argv(),
            ["joyride", "-d", "/lib/a.so", "--no-pci", "--vdev", "net_tap0,iface=jr0"]
        );
    }

    #[test]
    fn plugins_default_to_the_pmds_found_at_build_time() {
        let config = EalConfig::new(Vec::<String>::new());
        assert_eq!(config.plugins.len(), dpdk_sys::PMDS.len());
        assert!(dpdk_sys::PMDS.iter().any(|(name, _)| *name == "net_af_packet"));
    }

    #[test]
    fn no_huge_does_not_ask_for_in_memory() {
        // The EAL refuses `--in-memory` together with `--no-huge`.
        let argv = EalConfig::no_huge("p", 64).argv();
        assert!(argv.iter().any(|a| a == "--no-huge"));
        assert!(!argv.iter().any(|a| a == "--in-memory"));
        assert!(argv.windows(2).any(|w| w == ["--file-prefix", "p"]));
    }
}
