//! The `vtool` binary's integration tests, one module per area. One test binary, not one per
//! file: each would link the binary's whole dependency tree again, which on two cores costs
//! more than the tests. `cargo test -p vtool --test tests -- thrash::` runs one area.

mod support;

mod check_copy;
mod cli;
mod custody;
mod damage;
mod drill;
mod fuzz;
mod garage_repo;
mod gate;
mod hostile;
mod liveness;
mod migrate;
mod profiles;
mod prune;
mod realistic_nodes;
mod run_ops;
mod run_packaging;
mod s3_repo;
mod sealed_objects;
mod sftp_repo;
mod thrash;
mod tower;
mod trust_ops;
