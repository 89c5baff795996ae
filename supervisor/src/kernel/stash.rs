//! Results kept for callers that vanished before their answer.
//!
//! When a target thread dies (or its call is interrupted) after the supervisor
//! accepted a connection or received bytes for it, those are not dropped: they
//! wait here, keyed by the socket's identity (`st_dev`, `st_ino`), and the
//! next trapped call on that socket gets them first. The stash holds a
//! duplicate of the socket, so the identity cannot be reused while an entry
//! lives; entries expire after [`Stash::TTL`] so a socket the program closed is
//! not held open forever.

use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

/// Socket identity: `(st_dev, st_ino)`.
pub type SockId = (u64, u64);

/// A connection accepted for a vanished caller.
pub struct Accepted {
    /// The new socket.
    pub fd: OwnedFd,
    /// The peer address bytes and the kernel's full length.
    pub addr: (Vec<u8>, u32),
}

/// Data received for a vanished caller.
pub struct Datagram {
    /// Payload (for a stream socket: bytes in order).
    pub bytes: Vec<u8>,
    /// Source address bytes and full length.
    pub name: (Vec<u8>, u32),
}

struct Entry<T> {
    items: VecDeque<T>,
    _holder: OwnedFd,
    at: Instant,
}

/// The stash.
#[derive(Default)]
pub struct Stash {
    accepted: HashMap<SockId, Entry<Accepted>>,
    received: HashMap<SockId, Entry<Datagram>>,
}

impl Stash {
    /// How long an entry waits for a caller.
    pub const TTL: Duration = Duration::from_secs(60);

    /// Keeps an accepted connection of listener `id` (held open by `holder`).
    pub fn put_accepted(&mut self, id: SockId, holder: OwnedFd, a: Accepted) {
        let e = self.accepted.entry(id).or_insert_with(|| Entry {
            items: VecDeque::new(),
            _holder: holder,
            at: Instant::now(),
        });
        e.items.push_back(a);
        tracing::debug!(?id, "stashed an accepted connection for the next accept");
    }

    /// The oldest connection kept for listener `id`.
    pub fn take_accepted(&mut self, id: SockId) -> Option<Accepted> {
        let e = self.accepted.get_mut(&id)?;
        let a = e.items.pop_front();
        if e.items.is_empty() {
            self.accepted.remove(&id);
        }
        a
    }

    /// Keeps received data of socket `id`.
    pub fn put_received(&mut self, id: SockId, holder: OwnedFd, d: Datagram) {
        let e = self.received.entry(id).or_insert_with(|| Entry {
            items: VecDeque::new(),
            _holder: holder,
            at: Instant::now(),
        });
        e.items.push_back(d);
        tracing::debug!(?id, "stashed received data for the next receive");
    }

    /// Data kept for socket `id`: for a stream at most `max` bytes (the rest
    /// stays), for a datagram socket one whole datagram.
    pub fn take_received(&mut self, id: SockId, max: usize, stream: bool) -> Option<Datagram> {
        let e = self.received.get_mut(&id)?;
        let front = e.items.front_mut()?;
        let out = if stream && front.bytes.len() > max {
            let rest = front.bytes.split_off(max);
            let head = std::mem::replace(&mut front.bytes, rest);
            Datagram {
                bytes: head,
                name: front.name.clone(),
            }
        } else {
            e.items.pop_front()?
        };
        if e.items.is_empty() {
            self.received.remove(&id);
        }
        Some(out)
    }

    /// Drops entries older than [`Self::TTL`].
    pub fn expire(&mut self, now: Instant) {
        self.accepted.retain(|_, e| now.duration_since(e.at) < Self::TTL);
        self.received.retain(|_, e| now.duration_since(e.at) < Self::TTL);
    }
}
