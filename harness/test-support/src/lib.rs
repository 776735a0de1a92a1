//! What the harness's tests and benchmarks share, kept out of the crates
//! that ship (a dev-dependency only): the throwaway PostgreSQL server.

pub mod pgtest;
