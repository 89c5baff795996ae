//! The kernel file descriptors that stand for user-space sockets inside a
//! traced program.
//!
//! Every TCP or UDP socket that Joyride's user-space stack serves is, inside
//! the target, a real kernel fd: one end of an `AF_UNIX` socketpair,
//! installed with `SECCOMP_IOCTL_NOTIF_ADDFD`. The supervisor keeps the other
//! end in a [`Bridge`] and pumps bytes between it and the stack. So `read`,
//! `write`, `poll`, `epoll`, `fork`, `dup`, `close` on the socket are never
//! trapped and run in the kernel at full speed.
//!
//! This crate deals only with those kernel objects. It knows nothing of
//! seccomp (installing the fd is the supervisor's) or of the stack.
//!
//! # Why a socketpair and not an eventfd
//!
//! The target's fd must behave like a socket for every untrapped call: carry
//! bytes both ways with backpressure (`read`/`write` block or `EAGAIN`),
//! report readable *and* not writable, half-closed (`EPOLLRDHUP`), hung up
//! (`EPOLLHUP`), reset (`EPOLLERR`), and tell us when the program closes its
//! last copy (after `fork`/`dup`, only the last close counts). An eventfd
//! can only be readable or not, is always writable, cannot carry data, and
//! would need every `read`/`write` trapped. An `AF_UNIX` socketpair gives all
//! of the above from the kernel: stream pairs for TCP, `SOCK_SEQPACKET`
//! pairs for UDP (message boundaries like `SOCK_DGRAM`, plus EOF and
//! `EPOLLHUP` when the peer closes, which connected `SOCK_DGRAM` lacks).
//!
//! # What the target sees
//!
//! A TCP socket starts as an unconnected `AF_UNIX` stream socket
//! ([`unconnected`]) that becomes the target's end of its bridge when the
//! supervisor connects it to its [`Hub`], or a listening socket when it
//! listens ([`Lobby`]): one open file for the socket's whole life (the
//! `lobby` module says why, and what differs from TCP before a
//! connection). Accepted connections and UDP sockets are socketpairs.
//!
//! | state (supervisor side) | target's end polls | target's calls |
//! |---|---|---|
//! | TCP, fresh ([`unconnected`]) | `EPOLLOUT \| EPOLLHUP` | `read`: `EINVAL`; `write`: `ENOTCONN` |
//! | TCP, listening ([`Hub::lobby`]); [`Lobby::ring`] | nothing; `EPOLLIN` | `read`: `EINVAL` |
//! | connected, nothing written | `EPOLLOUT` | `read`: `EAGAIN`/blocks |
//! | [`Bridge::write`] | `EPOLLIN \| EPOLLOUT` | `read` gets the bytes |
//! | [`Bridge::hold_writes`] (connect in progress) | no `EPOLLOUT` | `write`: `EAGAIN`/blocks |
//! | [`Bridge::release_writes`] | `EPOLLOUT` fires | `write` proceeds |
//! | [`Bridge::shut_write`] (FIN) | `EPOLLIN \| EPOLLRDHUP \| EPOLLOUT` | `read`: data then 0; `write` works |
//! | [`Bridge::reset`]/drop, our queue empty | `EPOLLIN \| EPOLLRDHUP \| EPOLLHUP` (+`EPOLLOUT`) | `read`: data then 0; `write`: `EPIPE` |
//! | reset/drop with unread bytes at our end (filler while held, or [`Bridge::reset_with`]) | `EPOLLIN \| EPOLLRDHUP \| EPOLLHUP \| EPOLLERR` (+`EPOLLOUT`) | `read`: data, then `ECONNRESET` once, then 0; `write`: `EPIPE` |
//!
//! And what we see of the target ([`Bridge::peer`]): `shutdown(SHUT_WR)` is
//! [`Peer::WriteShut`] (`EPOLLRDHUP`, read gives EOF), the last close is
//! [`Peer::Closed`] (`EPOLLHUP`), or [`Peer::ClosedUnread`] (`EPOLLERR`,
//! `ECONNRESET`) when it left data we wrote unread, which Linux TCP answers
//! with RST. Closing one of several copies of its fd (fork, dup) changes
//! nothing: the socket is released with its last file reference. A target
//! end shut down both ways but not closed also gives our end `EPOLLHUP`;
//! only then is the socket looked up by inode with sock_diag (`UNIX_DIAG`)
//! to tell the two apart. An edge-triggered epoll on our end reports the
//! final close even when `EPOLLHUP` was already set.
//!
//! The supervisor must not keep a copy of the target's end beyond a short
//! operation ([`Bridge::new`] hands it over for `ADDFD`; `pidfd_getfd`
//! duplicates for [`Bridge::hold_writes`], [`Lobby::unring`],
//! [`Bridge::sync_sources`], [`Bridge::reset_with`]): a copy keeps the
//! socket open, and the target's close would never show. A fresh or
//! listening object has no bridge to hang up: [`Hub::exists`] asks
//! sock_diag whether it is still open.
#![deny(unsafe_code)]

mod bridge;
mod diag;
mod lobby;
mod sys;

pub use bridge::{Bridge, DatagramMeta, Kind, Peer, DATAGRAM_BUFFER, MAX_DATAGRAM, STREAM_BUFFER};
pub use lobby::{unconnected, Hub, Lobby};
