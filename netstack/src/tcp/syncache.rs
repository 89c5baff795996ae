//! Syncache (filled by its owner).
