//! One packet buffer (`struct rte_mbuf`), owned.

use std::fmt;
use std::ptr::NonNull;

use dpdk_sys::rte_mbuf;

/// A packet buffer. Move-only: it is freed back to its pool on drop, and
/// handed to DPDK (no longer ours) on transmit. Only the first segment's data
/// is reachable; Joyride's pools hold a whole frame in one segment.
#[repr(transparent)]
pub struct Mbuf {
    ptr: NonNull<rte_mbuf>,
}

// SAFETY: an Mbuf is the unique owner of its rte_mbuf (reference count 1, no
// clones are ever made), and freeing it from any thread is safe (pools are
// multi-producer).
unsafe impl Send for Mbuf {}
// SAFETY: &Mbuf only reads the buffer.
unsafe impl Sync for Mbuf {}

impl Mbuf {
    /// Takes ownership of `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must be a valid mbuf from a pktmbuf pool, with reference count 1
    /// and no other owner; it will be freed when the result drops.
    pub(crate) unsafe fn from_raw(ptr: NonNull<rte_mbuf>) -> Mbuf {
        Mbuf { ptr }
    }

    /// Bytes of data in the first segment.
    pub fn len(&self) -> usize {
        // SAFETY: self.ptr is a valid mbuf we own.
        usize::from(unsafe { dpdk_sys::jr_pktmbuf_data_len(self.ptr.as_ptr()) })
    }

    /// True when the first segment holds no data.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of data in the whole packet (all segments).
    pub fn pkt_len(&self) -> usize {
        // SAFETY: self.ptr is a valid mbuf we own.
        let len = unsafe { dpdk_sys::jr_pktmbuf_pkt_len(self.ptr.as_ptr()) };
        len as usize
    }

    /// Number of segments in the packet.
    pub fn segments(&self) -> u16 {
        // SAFETY: self.ptr is a valid mbuf we own.
        unsafe { dpdk_sys::jr_pktmbuf_nb_segs(self.ptr.as_ptr()) }
    }

    /// Free bytes before the data.
    pub fn headroom(&self) -> usize {
        // SAFETY: self.ptr is a valid mbuf we own.
        usize::from(unsafe { dpdk_sys::jr_pktmbuf_headroom(self.ptr.as_ptr()) })
    }

    /// Free bytes after the data (of the last segment).
    pub fn tailroom(&self) -> usize {
        // SAFETY: self.ptr is a valid mbuf we own.
        usize::from(unsafe { dpdk_sys::jr_pktmbuf_tailroom(self.ptr.as_ptr()) })
    }

    /// The first segment's data.
    pub fn data(&self) -> &[u8] {
        let len = self.len();
        // The buffer is pool memory the EAL mapped zero-filled that only ever
        // holds bytes, so it is initialised.
        // SAFETY: mtod points at data_len bytes inside the mbuf's buffer, which
        // we own exclusively (reference count 1) while self is borrowed.
        unsafe { std::slice::from_raw_parts(dpdk_sys::jr_pktmbuf_mtod(self.ptr.as_ptr()), len) }
    }

    /// The first segment's data, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        let len = self.len();
        // SAFETY: as in data(); &mut self makes the borrow exclusive.
        unsafe { std::slice::from_raw_parts_mut(dpdk_sys::jr_pktmbuf_mtod(self.ptr.as_ptr()), len) }
    }

    /// Grows the data by `len` bytes at the end and returns them (their
    /// content is whatever the buffer held), or `None` without change if
    /// the tailroom is too small.
    pub fn append(&mut self, len: usize) -> Option<&mut [u8]> {
        let n = u16::try_from(len).ok()?;
        // SAFETY: self.ptr is a valid mbuf we own; append returns NULL or a
        // pointer to len bytes inside the buffer, now part of the data.
        let p = unsafe { dpdk_sys::jr_pktmbuf_append(self.ptr.as_ptr(), n) };
        let p = NonNull::new(p)?;
        // SAFETY: p points at len initialised (see data()) bytes of our
        // buffer, exclusively borrowed through &mut self.
        Some(unsafe { std::slice::from_raw_parts_mut(p.as_ptr(), len) })
    }

    /// Grows the data by `len` bytes at the front (into the headroom) and
    /// returns them, or `None` without change if the headroom is too small.
    pub fn prepend(&mut self, len: usize) -> Option<&mut [u8]> {
        let n = u16::try_from(len).ok()?;
        // SAFETY: as in append(), at the front.
        let p = unsafe { dpdk_sys::jr_pktmbuf_prepend(self.ptr.as_ptr(), n) };
        let p = NonNull::new(p)?;
        // SAFETY: as in append().
        Some(unsafe { std::slice::from_raw_parts_mut(p.as_ptr(), len) })
    }

    /// Removes `len` bytes from the front; false (and no change) if the first
    /// segment holds fewer.
    pub fn adj(&mut self, len: usize) -> bool {
        let Ok(n) = u16::try_from(len) else { return false };
        // SAFETY: self.ptr is a valid mbuf we own; adj checks the length.
        !unsafe { dpdk_sys::jr_pktmbuf_adj(self.ptr.as_ptr(), n) }.is_null()
    }

    /// Removes `len` bytes from the end; false (and no change) if the last
    /// segment holds fewer.
    pub fn trim(&mut self, len: usize) -> bool {
        let Ok(n) = u16::try_from(len) else { return false };
        // SAFETY: self.ptr is a valid mbuf we own; trim checks the length.
        unsafe { dpdk_sys::jr_pktmbuf_trim(self.ptr.as_ptr(), n) == 0 }
    }

    /// Offload flags (`ol_flags`, `RTE_MBUF_F_*`).
    pub fn ol_flags(&self) -> u64 {
        // SAFETY: self.ptr is a valid mbuf we own.
        unsafe { dpdk_sys::jr_mbuf_ol_flags(self.ptr.as_ptr()) }
    }

    /// Sets the offload flags (`ol_flags`, `RTE_MBUF_F_*`).
    pub fn set_ol_flags(&mut self, flags: u64) {
        // SAFETY: self.ptr is a valid mbuf we own exclusively.
        unsafe { dpdk_sys::jr_mbuf_set_ol_flags(self.ptr.as_ptr(), flags) }
    }

    /// Sets the header lengths checksum offload needs (`l2_len`, `l3_len`).
    pub fn set_tx_lens(&mut self, l2_len: u16, l3_len: u16) {
        // SAFETY: self.ptr is a valid mbuf we own exclusively; the fields
        // are bitfields of 7 and 9 bits, and the C side masks the values.
        unsafe { dpdk_sys::jr_mbuf_set_tx_lens(self.ptr.as_ptr(), l2_len, l3_len) }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf (reference count 1) and nobody uses it
        // after this; free returns every segment to its pool.
        unsafe { dpdk_sys::jr_pktmbuf_free(self.ptr.as_ptr()) }
    }
}

impl fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mbuf")
            .field("len", &self.len())
            .field("segments", &self.segments())
            .field("ol_flags", &format_args!("{:#x}", self.ol_flags()))
            .finish()
    }
}
