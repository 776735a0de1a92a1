//! End-to-end tests: the real `sync-server` binary on 127.0.0.1 port 0 with
//! a temp data dir, driven by the real client library.

mod support;

mod blobs;
mod errors;
mod faults;
mod hostile;
mod load;
mod mail;
mod sync;
mod workers;
