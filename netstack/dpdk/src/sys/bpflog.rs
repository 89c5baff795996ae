//! The messages of libxdp and libbpf (loaded with the `net_af_xdp` PMD),
//! routed to `tracing` at debug level instead of the process's stderr.
//!
//! libxdp prints what it falls back on at set-up (no bpffs mounted, no
//! multi-program dispatcher) and libbpf notes the ELF sections it skips:
//! nothing a user of a working port needs, and an error that matters shows
//! as the PMD's (DPDK's log) and as our [`crate::Error`]. A debug filter on
//! the target `bpf` brings them back (the field `lib` names the library).
//!
//! Both libraries are looked up among those already loaded
//! (`RTLD_NOLOAD`): without the PMD there is nothing to quiet.

use std::ffi::{c_char, c_int, c_void, CStr};

/// The print callback both libraries take: `int (*)(level, const char *fmt,
/// va_list ap)`. A `va_list` parameter is passed as a pointer on x86_64
/// (an array type decays) and on aarch64 (a 32-byte struct passed by
/// reference), the only targets this module is built for.
type PrintFn = unsafe extern "C" fn(level: c_int, fmt: *const c_char, ap: *mut c_void) -> c_int;
/// `libxdp_set_print` / `libbpf_set_print`: install a callback, return the
/// previous one.
type SetPrintFn = unsafe extern "C" fn(Option<PrintFn>) -> Option<PrintFn>;

extern "C" {
    /// `vsnprintf`, with the `va_list` passed as the pointer it is on the
    /// targets above.
    fn vsnprintf(buf: *mut c_char, size: usize, fmt: *const c_char, ap: *mut c_void) -> c_int;
}

/// Installs [`to_tracing`] as the print callback of libxdp and libbpf, for
/// those that are loaded.
pub(crate) fn route_to_tracing() {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        set_print(c"libxdp.so.1", c"libxdp_set_print", to_libxdp);
        set_print(c"libbpf.so.1", c"libbpf_set_print", to_libbpf);
    }
}

/// Calls `setter` of the loaded library `lib` with `print`.
fn set_print(lib: &CStr, setter: &CStr, print: PrintFn) {
    // SAFETY: lib is a NUL-terminated name; RTLD_NOLOAD only returns a
    // handle on a library already loaded (adding a reference that we keep:
    // the callback must stay installed) and never runs its constructors.
    let handle = unsafe { libc::dlopen(lib.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD) };
    if handle.is_null() {
        return;
    }
    // SAFETY: handle is a live dlopen handle, setter a NUL-terminated name.
    let sym = unsafe { libc::dlsym(handle, setter.as_ptr()) };
    if sym.is_null() {
        return;
    }
    // SAFETY: both libraries declare the setter as taking and returning a
    // print callback of type PrintFn (libxdp.h, libbpf.h); a function pointer
    // is the size of the symbol's address.
    let setter: SetPrintFn = unsafe { std::mem::transmute::<*mut c_void, SetPrintFn>(sym) };
    // SAFETY: print is a valid callback for the library's whole lifetime (a
    // plain function); the setter has no other precondition.
    unsafe { setter(Some(print)) };
    tracing::debug!(lib = %lib.to_string_lossy(), "library messages routed to the debug log");
}

/// libxdp's callback.
unsafe extern "C" fn to_libxdp(level: c_int, fmt: *const c_char, ap: *mut c_void) -> c_int {
    // SAFETY: forwarded as received from libxdp.
    unsafe { to_tracing("libxdp", level, fmt, ap) }
}

/// libbpf's callback.
unsafe extern "C" fn to_libbpf(level: c_int, fmt: *const c_char, ap: *mut c_void) -> c_int {
    // SAFETY: forwarded as received from libbpf.
    unsafe { to_tracing("libbpf", level, fmt, ap) }
}

/// Formats a library message and logs it at debug level (the libraries'
/// debug level, 2 in both, is dropped: it is verbose and costs a format).
///
/// # Safety
///
/// `fmt` and `ap` must be a format string and its arguments as the library
/// passes them to its print callback.
unsafe fn to_tracing(lib: &'static str, level: c_int, fmt: *const c_char, ap: *mut c_void) -> c_int {
    if level >= 2 || !tracing::enabled!(tracing::Level::DEBUG) {
        return 0;
    }
    let mut buf = [0 as c_char; 512];
    // SAFETY: buf has buf.len() bytes, which vsnprintf writes at most (NUL
    // included, truncating); fmt and ap are the library's, used once.
    let n = unsafe { vsnprintf(buf.as_mut_ptr(), buf.len(), fmt, ap) };
    if n < 0 {
        return n;
    }
    // SAFETY: vsnprintf NUL-terminated buf.
    let msg = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
    tracing::debug!(target: "bpf", lib, level, "{}", msg.trim_end());
    n
}
