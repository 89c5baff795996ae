//! Finds the system's DPDK with pkg-config, compiles the C shim over DPDK's
//! inline functions, generates bindings with an allowlist, and records where
//! the poll-mode drivers live.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Oldest DPDK whose API the shim and the wrapper are written against.
const MIN_DPDK: &str = "21.11";

/// Poll-mode drivers Joyride promises to support, by library name.
const PMDS: &[(&str, &str)] = &[
    ("net_af_packet", "rte_net_af_packet"),
    ("net_af_xdp", "rte_net_af_xdp"),
    ("net_tap", "rte_net_tap"),
    ("net_memif", "rte_net_memif"),
    ("net_ring", "rte_net_ring"),
    ("net_null", "rte_net_null"),
];

/// Functions bindgen generates beyond the shim's `jr_*`.
const FUNCTIONS: &[&str] = &[
    "rte_eal_init",
    "rte_eal_cleanup",
    "rte_strerror",
    "rte_socket_id",
    "rte_dev_probe",
    "rte_eal_hotplug_remove",
    "rte_pktmbuf_pool_create",
    "rte_mempool_free",
    "rte_mempool_avail_count",
    "rte_mempool_in_use_count",
    "rte_eth_dev_count_avail",
    "rte_eth_find_next",
    "rte_eth_dev_is_valid_port",
    "rte_eth_dev_get_port_by_name",
    "rte_eth_dev_get_name_by_port",
    "rte_eth_dev_socket_id",
    "rte_eth_dev_info_get",
    "rte_eth_dev_configure",
    "rte_eth_rx_queue_setup",
    "rte_eth_tx_queue_setup",
    "rte_eth_dev_start",
    "rte_eth_dev_stop",
    "rte_eth_dev_close",
    "rte_eth_macaddr_get",
    "rte_eth_stats_get",
    "rte_eth_stats_reset",
    "rte_eth_promiscuous_enable",
    "rte_eth_promiscuous_disable",
    "rte_eth_dev_get_mtu",
    "rte_eth_dev_adjust_nb_rx_tx_desc",
    "rte_eth_dev_owner_new",
    "rte_eth_dev_owner_set",
    "rte_eth_dev_owner_unset",
    "rte_eth_dev_set_mtu",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=shim/shim.h");
    println!("cargo:rerun-if-changed=shim/shim.c");

    let cflags = dpdk_cflags();

    // The shim first, so that the DPDK libraries follow it on the link line
    // and `--as-needed` keeps the ones it references.
    let mut shim = cc::Build::new();
    shim.file("shim/shim.c").warnings(true).opt_level(3);
    for flag in &cflags {
        shim.flag(flag);
    }
    shim.compile("jr_dpdk_shim");

    let lib = pkg_config::Config::new()
        .atleast_version(MIN_DPDK)
        .probe("libdpdk")
        .unwrap_or_else(|e| missing_dpdk(&e.to_string()));
    println!("cargo:version={}", lib.version);

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings(&cflags, &out.join("bindings.rs"));
    let mut lib_dirs = lib.link_paths.clone();
    lib_dirs.push(pkg_config_query(&["--variable=libdir", "libdpdk"]).into());
    pmd_table(&lib_dirs, &out.join("pmds.rs"));
}

/// Stops the build with instructions for installing DPDK.
fn missing_dpdk(why: &str) -> ! {
    panic!(
        "\n\ndpdk-sys: DPDK >= {MIN_DPDK} was not found through pkg-config (libdpdk.pc).\n\
         On Debian/Ubuntu: apt-get install libdpdk-dev pkg-config\n\
         For a DPDK built from source, point PKG_CONFIG_PATH at its lib/<triple>/pkgconfig.\n\
         pkg-config said: {why}\n"
    );
}

/// The compiler flags DPDK's headers need (include paths, `-include
/// rte_config.h`, the `-march` DPDK was built for), split into arguments.
fn dpdk_cflags() -> Vec<String> {
    pkg_config_query(&["--cflags", "libdpdk"])
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Runs pkg-config with `args` and returns its standard output.
fn pkg_config_query(args: &[&str]) -> String {
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into());
    let output = Command::new(&pkg_config)
        .args(args)
        .output()
        .unwrap_or_else(|e| missing_dpdk(&format!("running {pkg_config}: {e}")));
    if !output.status.success() {
        missing_dpdk(&String::from_utf8_lossy(&output.stderr));
    }
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Generates the bindings: the shim's `jr_*` items and an explicit list of
/// DPDK control-path functions, with mbufs and mempools opaque.
fn bindings(cflags: &[String], out: &Path) {
    let mut builder = bindgen::Builder::default()
        .header("shim/shim.h")
        .clang_args(cflags)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .allowlist_function("jr_.*")
        .allowlist_var("JR_.*")
        .allowlist_var("RTE_MAX_ETHPORTS")
        .allowlist_var("RTE_ETH_NAME_MAX_LEN")
        .allowlist_var("RTE_ETHER_ADDR_LEN")
        .allowlist_var("SOCKET_ID_ANY")
        .allowlist_var("RTE_ETH_MAX_OWNER_NAME_LEN")
        .allowlist_type("jr_link")
        .allowlist_type("rte_eth_stats")
        .opaque_type("rte_mbuf")
        .opaque_type("rte_mempool")
        .opaque_type("rte_device")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false);
    for f in FUNCTIONS {
        builder = builder.allowlist_function(f);
    }
    builder
        .generate()
        .expect("bindgen failed on shim/shim.h")
        .write_to_file(out)
        .expect("writing bindings.rs");
}

/// Records the shared-library path of each PMD we support, so that the
/// wrapper can hand them to the EAL with `-d` (see the crate docs for why).
fn pmd_table(link_paths: &[PathBuf], out: &Path) {
    let mut src = String::from(
        "/// Poll-mode drivers found at build time: (driver name, shared library).\n\
         pub const PMDS: &[(&str, &str)] = &[\n",
    );
    for (driver, lib) in PMDS {
        let found = link_paths
            .iter()
            .map(|dir| dir.join(format!("lib{lib}.so")))
            .find_map(|p| p.canonicalize().ok());
        match found {
            Some(path) => {
                writeln!(src, "    ({driver:?}, {:?}),", path.display().to_string()).expect("formatting to a String");
            }
            None => println!("cargo:warning=DPDK PMD {driver} (lib{lib}.so) not found"),
        }
    }
    src.push_str("];\n");
    std::fs::write(out, src).expect("writing pmds.rs");
}
