//! Nothing but its `Cargo.toml`: see there and ARCHITECTURE.md.
