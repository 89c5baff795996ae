//! Initial sequence numbers (filled by its owner).
