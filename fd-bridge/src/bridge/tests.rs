//! Unit tests with real socketpairs: the "target end" is the fd
//! `Bridge::new` returns, used directly, and `dup`s of it play the
//! duplicates the supervisor gets with `pidfd_getfd`.

use super::*;

#[test]
fn stream_round_trip() {
    let (mut b, t) = Bridge::new(Kind::Stream, true).unwrap();
    assert_eq!(b.write(b"hello").unwrap(), 5);
    let mut buf = [0u8; 16];
    assert_eq!(rustix::io::read(&t, &mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"hello");
    rustix::io::write(&t, b"world").unwrap();
    assert_eq!(b.read(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"world");
}
