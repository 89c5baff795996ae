//! SACK scoreboard (filled by its owner).
