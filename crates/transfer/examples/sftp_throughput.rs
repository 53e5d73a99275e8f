//! Loopback throughput of the SFTP backend with large objects, for comparison with `scp`:
//! `bench/sftp_throughput.sh` runs it. `VTOOL_SFTP_BENCH_MB` sets the total size (default 128).
//! It checks the bytes read back, never the speed: machines vary too much.

use std::time::Instant;

use vtool_testkit::sshd::Sshd;
use vtool_testkit::within;
use vtool_transfer::{Backend, SftpBackend};

const OBJECT: usize = 64 << 20;

fn main() {
    let total_mb: usize = std::env::var("VTOOL_SFTP_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    let count = (total_mb << 20).div_ceil(OBJECT).max(1);
    let server = Sshd::start();
    let config = server.config(&server.dir.path().join("repo"));
    within(600, "throughput", move || {
        let b = SftpBackend::create(config).expect("create");
        // Incompressible and distinct per object.
        let objects: Vec<Vec<u8>> = (0..count)
            .map(|i| {
                let mut x = blake3::Hasher::new();
                x.update(&(i as u64).to_le_bytes());
                let mut data = vec![0u8; OBJECT];
                x.finalize_xof().fill(&mut data);
                data
            })
            .collect();
        let mib = (count * OBJECT) as f64 / (1 << 20) as f64;

        let start = Instant::now();
        for (i, data) in objects.iter().enumerate() {
            b.put(&format!("packs/seq-{i}"), data).expect("put");
        }
        let put = start.elapsed().as_secs_f64();

        let start = Instant::now();
        std::thread::scope(|s| {
            for (i, data) in objects.iter().enumerate() {
                let b = &b;
                s.spawn(move || b.put(&format!("packs/par-{i}"), data).expect("put"));
            }
        });
        let par = start.elapsed().as_secs_f64();

        let start = Instant::now();
        for (i, data) in objects.iter().enumerate() {
            assert!(
                b.get(&format!("packs/seq-{i}")).expect("get") == *data,
                "object {i} read back wrong"
            );
        }
        let get = start.elapsed().as_secs_f64();
        println!(
            "sftp loopback, {count} x 64 MiB: put {:.0} MiB/s sequential, {:.0} MiB/s with {count} threads; get {:.0} MiB/s",
            mib / put,
            mib / par,
            mib / get
        );
    });
}
