//! Congestion control (filled by its owner).
