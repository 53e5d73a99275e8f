//! `vtool tower copy`: an Agave tower copied to a standby's ledger, checked by hash.

use std::fs;

use serde_json::Value;

use crate::support::{s, Env};

const IDENTITY: &str = "7Np41oeYqPefeNQEHSv1UDhYrehxin3NStELsSKCT4K2";

#[test]
fn the_tower_is_copied_byte_identical_or_not_at_all() {
    let env = Env::new();
    let (active, standby) = (env.path("active/ledger"), env.path("standby/ledger"));
    fs::create_dir_all(&active).expect("mkdir");
    fs::create_dir_all(&standby).expect("mkdir");
    let name = format!("tower-1_9-{IDENTITY}.bin");
    let tower: Vec<u8> = (0..3000u32).flat_map(|i| i.to_le_bytes()).collect();
    fs::write(active.join(&name), &tower).expect("write");
    let expect = blake3::hash(&tower).to_hex().to_string();
    let copied: Value = env.json(&[
        "tower",
        "copy",
        "--identity",
        IDENTITY,
        "--from",
        s(&active),
        "--to",
        s(&standby),
        "--expect-blake3",
        &expect,
        "--json",
    ]);
    assert_eq!(copied["blake3"], expect.as_str());
    assert_eq!(fs::read(standby.join(&name)).expect("copied"), tower);

    // A tower that changed since its hash was taken on the other side is refused.
    fs::write(active.join(&name), b"newer votes").expect("write");
    let out = env.run(&[
        "tower",
        "copy",
        "--identity",
        IDENTITY,
        "--from",
        s(&active),
        "--to",
        s(&standby),
        "--expect-blake3",
        &expect,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not the expected"));
    assert_eq!(fs::read(standby.join(&name)).expect("kept"), tower);

    let out = env.run(&[
        "tower",
        "copy",
        "--identity",
        "nope",
        "--from",
        s(&active),
        "--to",
        s(&standby),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Solana identity"));
}
