//! Pools of packet buffers (`rte_pktmbuf_pool_create`).

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use dpdk_sys::rte_mempool;

use crate::error::{Errno, Error};
use crate::sys::eal::Eal;
use crate::sys::mbuf::Mbuf;
use crate::sys::rte_errno;

/// A pool of packet buffers. Cheap to clone (shared handle); the pool is
/// freed when the last handle goes, unless mbufs from it are still alive, in
/// which case it is leaked rather than freed under them.
#[derive(Debug, Clone)]
pub struct Mempool {
    inner: Arc<Pool>,
}

/// The owned `rte_mempool`.
#[derive(Debug)]
struct Pool {
    ptr: NonNull<rte_mempool>,
    name: String,
    data_room: u16,
    /// Mbufs that were out when a device receiving into the pool was
    /// closed (see [`Mempool::note_closed_device`]).
    kept_by_closed: AtomicU32,
}

// SAFETY: a pktmbuf pool uses DPDK's default multi-producer/multi-consumer
// ring ops, so allocating and freeing from any thread is safe; per-lcore
// caches are only used by the one thread that holds that lcore id, and
// threads DPDK did not register (lcore id LCORE_ID_ANY, e.g. the threads
// DpdkNics of one port run in) get no cache and go to the ring directly.
unsafe impl Send for Pool {}
// SAFETY: as for Send; every operation through &Pool is thread-safe.
unsafe impl Sync for Pool {}

impl Mempool {
    /// Data room of DPDK's default mbuf size (`RTE_MBUF_DEFAULT_BUF_SIZE`):
    /// a 2048-byte frame plus the headroom.
    pub const DEFAULT_DATA_ROOM: u16 = dpdk_sys::JR_MBUF_DEFAULT_BUF_SIZE;

    /// Creates a pool of `size` mbufs (best `2^n - 1`) with a per-lcore cache
    /// of `cache` and `data_room` bytes of buffer each (headroom included).
    /// `name` must be unique in the process and shorter than DPDK's limit
    /// (25 bytes).
    pub fn new(_eal: &Eal, name: &str, size: u32, cache: u32, data_room: u16) -> Result<Mempool, Error> {
        let fail = |errno| Error::MempoolCreate {
            name: name.to_owned(),
            size,
            data_room,
            errno: Errno(errno),
        };
        if name.len() >= dpdk_sys::JR_MEMPOOL_NAMESIZE as usize {
            return Err(fail(libc::ENAMETOOLONG));
        }
        let c_name = CString::new(name).map_err(|_| fail(libc::EINVAL))?;
        // SAFETY: the EAL is up (we hold an Eal); c_name is a valid C string
        // that DPDK copies; the numeric arguments are checked by DPDK, which
        // returns NULL and sets rte_errno on failure.
        let ptr = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(c_name.as_ptr(), size, cache, 0, data_room, dpdk_sys::SOCKET_ID_ANY)
        };
        let ptr = NonNull::new(ptr).ok_or_else(|| fail(rte_errno()))?;
        tracing::debug!(name, size, cache, data_room, "mempool created");
        Ok(Mempool {
            inner: Arc::new(Pool {
                ptr,
                name: name.to_owned(),
                data_room,
                kept_by_closed: AtomicU32::new(0),
            }),
        })
    }

    /// Takes one mbuf out of the pool, empty (no data, headroom reserved).
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool pointer is valid while self lives; alloc returns
        // NULL or an mbuf with reference count 1 that we now own.
        let m = unsafe { dpdk_sys::jr_pktmbuf_alloc(self.inner.ptr.as_ptr()) };
        // SAFETY: a non-NULL result is a freshly allocated mbuf owned by us.
        NonNull::new(m).map(|m| unsafe { Mbuf::from_raw(m) })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Buffer size of each mbuf, headroom included.
    pub fn data_room(&self) -> u16 {
        self.inner.data_room
    }

    /// Mbufs currently in the pool (including per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool pointer is valid while self lives.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.inner.ptr.as_ptr()) }
    }

    /// Mbufs currently out of the pool.
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool pointer is valid while self lives.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.inner.ptr.as_ptr()) }
    }

    /// Records that a device receiving into the pool was closed with
    /// `in_use` mbufs out: some PMDs never give back what their queues held
    /// (`net_af_xdp` in DPDK 22.11 leaves its fill queue's mbufs out), so
    /// the pool, leaked when it goes as ever, says so at debug level only.
    pub(crate) fn note_closed_device(&self, in_use: u32) {
        self.inner.kept_by_closed.fetch_max(in_use, Ordering::Relaxed);
    }

    /// The raw pool, for queue set-up. Valid while `self` lives.
    pub(crate) fn as_ptr(&self) -> *mut rte_mempool {
        self.inner.ptr.as_ptr()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // SAFETY: the pointer is valid until freed below.
        let in_use = unsafe { dpdk_sys::rte_mempool_in_use_count(self.ptr.as_ptr()) };
        if in_use != 0 {
            let kept = self.kept_by_closed.load(Ordering::Relaxed);
            if in_use <= kept {
                tracing::debug!(
                    name = %self.name,
                    in_use,
                    "mempool dropped with the mbufs a closed device kept; leaking it"
                );
            } else {
                tracing::warn!(name = %self.name, in_use, "mempool dropped with mbufs out; leaking it");
            }
            return;
        }
        // SAFETY: this is the last handle (Arc), so nobody can allocate from
        // the pool any more, and no mbuf from it is alive, so nothing can
        // free into it: freeing it cannot leave a dangling user.
        unsafe { dpdk_sys::rte_mempool_free(self.ptr.as_ptr()) };
    }
}
