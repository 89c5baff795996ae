//! Control messages (`msg_control`) as Linux lays them out and walks them,
//! for the calls the supervisor answers itself: writing the ones a receive
//! returns into the caller's buffer with `put_cmsg`'s truncation
//! (`net/core/scm.c`), and walking the ones a send was given with
//! `for_each_cmsghdr` and `CMSG_OK` (`include/linux/socket.h`).
//!
//! What the messages mean (which a socket returns, which a send honours) is
//! not decided here: see `exec::sockopt`.

/// `sizeof(struct cmsghdr)` on 64-bit Linux: `cmsg_len` (a `size_t`),
/// `cmsg_level`, `cmsg_type`.
pub const HDR: usize = std::mem::size_of::<libc::cmsghdr>();

/// `CMSG_ALIGN`.
fn align(n: usize) -> usize {
    (n + 7) & !7
}

/// `CMSG_LEN(len)`.
pub const fn cmsg_len(len: usize) -> usize {
    HDR + len
}

/// One control message: level, type, data.
pub type Cmsg = (i32, i32, Vec<u8>);

/// One control message of a send, borrowed from its buffer.
pub type CmsgRef<'a> = (i32, i32, &'a [u8]);

/// Lays `msgs` out in a control buffer of `cap` bytes as a series of
/// `put_cmsg` calls does, and says whether anything was cut (`MSG_CTRUNC`).
///
/// `put_cmsg`: with less room than a header left, the message is dropped
/// and `MSG_CTRUNC` set; with room for the header but not all the data, it
/// is cut to what fits, its `cmsg_len` says the cut length, and
/// `MSG_CTRUNC` is set; then the buffer advances by `CMSG_SPACE(len)`, or
/// to its end. The returned bytes are what the kernel leaves there and
/// their length is the `msg_controllen` it returns (padding included).
pub fn put_cmsgs(msgs: &[Cmsg], cap: usize) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut truncated = false;
    for (level, ty, data) in msgs {
        let room = cap - out.len();
        if room < HDR {
            truncated = true;
            continue;
        }
        let mut len = cmsg_len(data.len());
        if len > room {
            truncated = true;
            len = room;
        }
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(&level.to_ne_bytes());
        out.extend_from_slice(&ty.to_ne_bytes());
        out.extend_from_slice(&data[..len - HDR]);
        let space = align(cmsg_len(data.len())).min(room);
        out.resize(out.len() + space - len, 0);
    }
    (out, truncated)
}

/// The control messages of a send, walked as the kernel walks them
/// (`for_each_cmsghdr`): from the start while a whole header fits, each
/// checked with `CMSG_OK` (`cmsg_len` at least a header and within the
/// buffer), `EINVAL` otherwise. Bytes too few for a header after the last
/// message are ignored.
pub fn walk(control: &[u8]) -> Result<Vec<CmsgRef<'_>>, i32> {
    let mut out = Vec::new();
    let mut off = 0;
    while control.len() - off >= HDR {
        let field = |at: usize, n: usize| &control[off + at..off + at + n];
        let len = usize::from_ne_bytes(field(0, 8).try_into().expect("8 bytes"));
        let level = i32::from_ne_bytes(field(8, 4).try_into().expect("4 bytes"));
        let ty = i32::from_ne_bytes(field(12, 4).try_into().expect("4 bytes"));
        if len < HDR || len > control.len() - off {
            return Err(libc::EINVAL);
        }
        out.push((level, ty, &control[off + HDR..off + len]));
        // CMSG_NXTHDR: the next header must fit whole.
        off = match off.checked_add(align(len)) {
            Some(next) if next <= control.len() => next,
            _ => break,
        };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOL_IPV6: i32 = libc::IPPROTO_IPV6;
    const HOPLIMIT: i32 = libc::IPV6_HOPLIMIT;
    const TCLASS: i32 = libc::IPV6_TCLASS;

    /// `(cmsg_len, level, type, data)` of each message in `b`, as a
    /// program's `CMSG_FIRSTHDR`/`CMSG_NXTHDR` loop bounded by the returned
    /// `msg_controllen` sees them (CPython's recvmsg parses this way).
    fn seen(b: &[u8]) -> Vec<(usize, i32, i32, Vec<u8>)> {
        let mut v = Vec::new();
        let mut off = 0;
        while b.len() >= off + HDR {
            let len = usize::from_ne_bytes(b[off..off + 8].try_into().unwrap());
            let level = i32::from_ne_bytes(b[off + 8..off + 12].try_into().unwrap());
            let ty = i32::from_ne_bytes(b[off + 12..off + 16].try_into().unwrap());
            v.push((len, level, ty, b[off + HDR..off + len].to_vec()));
            off += align(len);
        }
        v
    }

    fn two() -> Vec<Cmsg> {
        vec![
            (SOL_IPV6, HOPLIMIT, 64i32.to_ne_bytes().to_vec()),
            (SOL_IPV6, TCLASS, 0xb9i32.to_ne_bytes().to_vec()),
        ]
    }

    /// The buffer sizes of CPython's RFC 3542 tests, with what Linux
    /// returns for them (checked on 6.18 with IPV6_RECVHOPLIMIT and
    /// IPV6_RECVTCLASS set): returned length, truncated, what is seen.
    #[test]
    fn truncation_as_put_cmsg_does_it() {
        let hl = 64i32.to_ne_bytes().to_vec();
        let tc = 0xb9i32.to_ne_bytes().to_vec();
        type Case = (usize, usize, bool, Vec<(usize, i32, i32, Vec<u8>)>);
        let cases: Vec<Case> = vec![
            // No room for a header: nothing, MSG_CTRUNC.
            (0, 0, true, vec![]),
            (1, 0, true, vec![]),
            (8, 0, true, vec![]),
            (15, 0, true, vec![]),
            // A header and part of the data: cut, cmsg_len says so.
            (16, 16, true, vec![(16, SOL_IPV6, HOPLIMIT, vec![])]),
            (19, 19, true, vec![(19, SOL_IPV6, HOPLIMIT, hl[..3].to_vec())]),
            // CMSG_LEN(4): the first whole, its padding cut off.
            (20, 20, true, vec![(20, SOL_IPV6, HOPLIMIT, hl.clone())]),
            // CMSG_SPACE(4): the first whole, the second dropped.
            (24, 24, true, vec![(20, SOL_IPV6, HOPLIMIT, hl.clone())]),
            (25, 24, true, vec![(20, SOL_IPV6, HOPLIMIT, hl.clone())]),
            (24 + 15, 24, true, vec![(20, SOL_IPV6, HOPLIMIT, hl.clone())]),
            (
                24 + 19,
                43,
                true,
                vec![
                    (20, SOL_IPV6, HOPLIMIT, hl.clone()),
                    (19, SOL_IPV6, TCLASS, tc[..3].to_vec()),
                ],
            ),
            // Both whole; the second's padding is not needed.
            (
                44,
                44,
                false,
                vec![(20, SOL_IPV6, HOPLIMIT, hl.clone()), (20, SOL_IPV6, TCLASS, tc.clone())],
            ),
            (
                48,
                48,
                false,
                vec![(20, SOL_IPV6, HOPLIMIT, hl.clone()), (20, SOL_IPV6, TCLASS, tc.clone())],
            ),
            (
                10240,
                48,
                false,
                vec![(20, SOL_IPV6, HOPLIMIT, hl.clone()), (20, SOL_IPV6, TCLASS, tc.clone())],
            ),
        ];
        for (cap, len, truncated, want) in cases {
            let (b, t) = put_cmsgs(&two(), cap);
            assert_eq!((b.len(), t), (len, truncated), "cap {cap}");
            assert_eq!(seen(&b), want, "cap {cap}");
        }
        assert_eq!(put_cmsgs(&[], 0), (vec![], false));
    }

    #[test]
    fn a_send_s_messages_are_walked_as_the_kernel_walks_them() {
        let (b, _) = put_cmsgs(&two(), 48);
        let hl = 64i32.to_ne_bytes();
        let tc = 0xb9i32.to_ne_bytes();
        let want: Vec<CmsgRef<'_>> = vec![(SOL_IPV6, HOPLIMIT, &hl[..]), (SOL_IPV6, TCLASS, &tc[..])];
        assert_eq!(walk(&b).unwrap(), want);
        // Without the last message's padding (CPython sends it so), and
        // with bytes too few for another header after it.
        assert_eq!(walk(&b[..44]).unwrap(), want);
        let mut more = b.clone();
        more.extend_from_slice(&[0xff; 15]);
        assert_eq!(walk(&more).unwrap(), want);
        assert_eq!(walk(&[]).unwrap(), vec![]);
        assert_eq!(walk(&[0; 15]).unwrap(), vec![]);
        // CMSG_OK: a length shorter than a header or past the end.
        let mut short = b.clone();
        short[..8].copy_from_slice(&15usize.to_ne_bytes());
        assert_eq!(walk(&short), Err(libc::EINVAL));
        let mut long = b.clone();
        long[24..32].copy_from_slice(&25usize.to_ne_bytes());
        assert_eq!(walk(&long), Err(libc::EINVAL));
        let mut huge = b;
        huge[..8].copy_from_slice(&usize::MAX.to_ne_bytes());
        assert_eq!(walk(&huge), Err(libc::EINVAL));
        // An odd-sized first message (CPython's testOddCmsgSize): the
        // second starts at the aligned offset.
        let odd: Vec<Cmsg> = vec![
            (SOL_IPV6, TCLASS, vec![1, 0, 0, 0, 0]),
            (SOL_IPV6, HOPLIMIT, hl.to_vec()),
        ];
        let (b, _) = put_cmsgs(&odd, 100);
        let got = walk(&b).unwrap();
        assert_eq!(got[0], (SOL_IPV6, TCLASS, &[1u8, 0, 0, 0, 0][..]));
        assert_eq!(got[1], (SOL_IPV6, HOPLIMIT, &hl[..]));
    }
}
