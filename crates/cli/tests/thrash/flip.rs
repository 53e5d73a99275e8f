//! Single-byte flips in every kind of repository object. Each flip is caught by some check
//! level (`check`, `check --packs`, `check --read-data --identity`), and a restore either
//! fails without writing wrong bytes or is byte-identical to the source.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use vtool_snapshot::index::decode_index;
use vtool_snapshot::repofile::BlobKind;

use super::kit::{
    code_of, must, nothing_wrong_written, same_tree, scenario_rng, trials, Rng, Tally,
};
use crate::support::{s, Env};
use vtool_testkit::node::write_node;

const KINDS: [&str; 8] = [
    "config",
    "keys",
    "snapshots",
    "index",
    "data-packs",
    "tree-packs",
    "drills",
    "check",
];

/// Every object of a repository by kind; packs split by what their index says they hold.
fn objects_by_kind(repo: &Path) -> BTreeMap<&'static str, Vec<PathBuf>> {
    let files = |dir: &str| -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![repo.join(dir)];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if !e.file_name().to_string_lossy().starts_with('.') {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    };
    let mut tree_packs = Vec::new();
    let mut data_packs = Vec::new();
    for index in files("index") {
        let bytes = fs::read(&index).expect("read index");
        let file = decode_index("index", &bytes).expect("intact index");
        for pack in file.packs {
            let hex = pack.id.to_hex();
            let path = repo.join(format!("packs/{}/{hex}", &hex[..2]));
            if pack.blobs.iter().all(|b| b.kind == BlobKind::Tree) {
                tree_packs.push(path);
            } else {
                data_packs.push(path);
            }
        }
    }
    BTreeMap::from([
        ("config", vec![repo.join("config")]),
        ("keys", files("keys")),
        ("snapshots", files("snapshots")),
        ("index", files("index")),
        ("data-packs", data_packs),
        ("tree-packs", tree_packs),
        ("drills", files("drills")),
        ("check", files("check")),
    ])
}

/// One flip: which check levels saw it and what a restore did.
fn flip_trial(
    env: &Env,
    rng: &mut Rng,
    kind: &str,
    object: &Path,
    source: &Path,
) -> Result<(), String> {
    let original = fs::read(object).map_err(|e| e.to_string())?;
    let at = rng.below(original.len() as u64) as usize;
    let mask = 1 + rng.below(255) as u8;
    let mut flipped = original.clone();
    flipped[at] ^= mask;
    fs::write(object, &flipped).map_err(|e| e.to_string())?;
    let what = format!(
        "{kind} {} byte {at} of {} ^ {mask:#04x}",
        object.display(),
        original.len()
    );
    let result = (|| -> Result<bool, String> {
        // Detection must not depend on index copies cached from the intact repository.
        fs::remove_dir_all(env.path("cache")).ok();
        let (repo, id) = (env.repo(), env.identity());
        let mut detected = false;
        for level in [
            vec!["check", "--repo", &repo],
            vec!["check", "--repo", &repo, "--packs"],
            vec!["check", "--repo", &repo, "--read-data", "--identity", &id],
        ] {
            detected |= code_of(env, &level)?.0 != 0;
        }
        let target = env.path("restored");
        fs::remove_dir_all(&target).ok();
        let (code, _) = code_of(
            env,
            &[
                "restore",
                "--repo",
                &repo,
                "--identity",
                &id,
                "latest",
                "--target",
                s(&target),
            ],
        )?;
        let name = source.file_name().expect("source name");
        if code == 0 {
            same_tree(source, &target.join(name))?;
        } else {
            nothing_wrong_written(source, &target.join(name))?;
        }
        Ok(detected)
    })();
    fs::write(object, &original).map_err(|e| e.to_string())?;
    result
        .map_err(|e| format!("{what}: {e}"))
        .and_then(|detected| {
            if detected {
                Ok(())
            } else {
                Err(format!("{what}: no check level detected it"))
            }
        })
}

pub fn flips() {
    let mut rng = scenario_rng("flip");
    let env = Env::with_repo();
    let src = env.path("node");
    write_node(&mut rng, &src, 12);
    let (repo, bk, id) = (env.repo(), env.backup_key(), env.identity());
    let setup = [
        vec!["backup", "--repo", &repo, "--backup-key", &bk, s(&src)],
        vec![
            "drill",
            "--repo",
            &repo,
            "--identity",
            &id,
            "latest",
            "--boot",
            "true",
        ],
        vec!["check", "--repo", &repo, "--packs", "--subset", "50%"],
    ];
    for args in setup {
        must(&env, &args).unwrap_or_else(|e| panic!("{e}"));
    }
    let objects = objects_by_kind(Path::new(&repo));
    for kind in KINDS {
        assert!(
            !objects[kind].is_empty(),
            "the repository has no {kind} object"
        );
    }
    let mut tallies: BTreeMap<&str, Tally> = KINDS
        .iter()
        .map(|k| (*k, Tally::new(&format!("flip-{k}"))))
        .collect();
    // Every kind at least twice, then kinds at random.
    let n = trials(2 * KINDS.len()).max(KINDS.len());
    for trial in 0..n {
        let kind = if trial < 2 * KINDS.len() {
            KINDS[trial % KINDS.len()]
        } else {
            KINDS[rng.below(KINDS.len() as u64) as usize]
        };
        let list = &objects[kind];
        let object = &list[rng.below(list.len() as u64) as usize];
        let outcome = flip_trial(&env, &mut rng, kind, object, &src);
        let tally = tallies.get_mut(kind).expect("every kind has a tally");
        tally.record(outcome);
    }
    let failures: Vec<String> = tallies.into_values().filter_map(Tally::report).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
