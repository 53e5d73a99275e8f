//! The thrash suite: kill -9 during backup, copy, forget and prune, single-byte flips in every object kind,
//! and concurrent backups into one repository. `VTOOL_THRASH_TRIALS` sets the trials per
//! scenario (small by default for CI; `bench/thrash.sh` runs more), `VTOOL_THRASH_SEED`
//! replays a run. Each scenario prints `thrash NAME: trials N, held H, failed F`.

mod concurrent;
mod flip;
mod kill;
mod kit;

#[test]
fn kill_9_during_backup() {
    kill::backup_kills();
}

#[test]
fn kill_9_during_copy() {
    kill::copy_kills();
}

#[test]
fn kill_9_during_forget_and_prune() {
    kill::retention_kills();
}

#[test]
fn single_byte_flips_in_every_object_kind() {
    flip::flips();
}

#[test]
fn concurrent_backups_into_one_repository() {
    concurrent::concurrent_backups();
}
