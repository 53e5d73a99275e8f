//! Fuzz targets for every parser of untrusted bytes, with proptest on stable: random bytes
//! and mutations of valid encodings. Each target asserts the parser returns (ok or error)
//! without panicking or running away. `VTOOL_FUZZ_CASES` sets cases per target (small by
//! default for CI; `bench/fuzz.sh` runs many more); each target prints
//! `fuzz NAME: N cases in S s`.

mod repo_objects;
mod url;
mod validator_docs;

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;
use std::time::Instant;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Cases per target: `VTOOL_FUZZ_CASES`, else 256.
fn cases() -> u32 {
    std::env::var("VTOOL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// Run `test` on `cases()` inputs from `strategy`; panics (caught by proptest and shrunk)
/// and returned errors fail the target. `test` says whether the parser accepted the input,
/// so the summary shows how many inputs got past it.
pub fn fuzz<S: Strategy>(
    name: &str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<bool, TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    quiet_panics();
    let cases = cases();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..Config::default()
    });
    let accepted = AtomicU64::new(0);
    let start = Instant::now();
    RUNNING_CASES.with(|r| r.set(true));
    let result = runner.run(&strategy, |input| {
        let ok = test(input)?;
        accepted.fetch_add(u64::from(ok), Ordering::Relaxed);
        Ok(())
    });
    RUNNING_CASES.with(|r| r.set(false));
    let line = format!(
        "fuzz {name}: {cases} cases in {:.2} s ({} accepted)",
        start.elapsed().as_secs_f64(),
        accepted.into_inner()
    );
    println!("{line}");
    if let Err(e) = result {
        panic!("fuzz {name}: {e}");
    }
}

thread_local! {
    static RUNNING_CASES: Cell<bool> = const { Cell::new(false) };
}

/// Shrinking re-runs a panicking input hundreds of times; proptest reports the panic of
/// the minimal one, so the default hook's message for each case would only bury it.
/// Panics outside the cases (the final report) still print.
fn quiet_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !RUNNING_CASES.with(Cell::get) {
                default(info);
            }
        }));
    });
}

/// Bytes shown as (lossy) text in failure reports: most inputs are JSON or URLs.
#[derive(Clone)]
pub struct Bytes(pub Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

/// Tokens that stress JSON decoders and the checks behind them: extreme and wrong-typed
/// numbers, nesting, escapes, names that could escape a restore target.
const TOKENS: &[&str] = &[
    "\"",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "null",
    "true",
    "-1",
    "0",
    "1e309",
    "-0.0",
    "18446744073709551615",
    "18446744073709551616",
    "4294967295",
    "4294967296",
    "9223372036854775808",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"..\"",
    "\"/\"",
    "\"\"",
    "[]",
    "{}",
    "\"0x\"",
    "\"0xzz\"",
];

/// One edit of an encoding; positions are taken modulo its length.
#[derive(Debug, Clone)]
pub enum Edit {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
    /// Replace a byte range with a token from [`TOKENS`].
    Token(usize, usize, usize),
    /// Copy a range elsewhere (duplicated entries, repeated fields).
    Duplicate(usize, usize, usize),
    /// Replace the first run of digits at or after a position with another number
    /// (sizes, offsets, lengths and versions just outside what the reader allows).
    Number(usize, u64),
}

fn edit() -> impl Strategy<Value = Edit> {
    let pos = any::<usize>();
    prop_oneof![
        4 => (pos, 1..=255u8).prop_map(|(p, m)| Edit::Flip(p, m)),
        1 => (pos, prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(p, b)| Edit::Insert(p, b)),
        1 => (pos, 1..16usize).prop_map(|(p, n)| Edit::Delete(p, n)),
        1 => pos.prop_map(Edit::Truncate),
        3 => (pos, 0..8usize, 0..TOKENS.len()).prop_map(|(p, n, t)| Edit::Token(p, n, t)),
        1 => (pos, 1..64usize, pos).prop_map(|(p, n, to)| Edit::Duplicate(p, n, to)),
        3 => (pos, 0..64u32, any::<u64>()).prop_map(|(p, bits, v)| Edit::Number(p, v >> bits)),
    ]
}

fn apply(data: &mut Vec<u8>, edit: &Edit) {
    let at = |p: usize, len: usize| if len == 0 { 0 } else { p % len };
    let len = data.len();
    match edit {
        Edit::Flip(p, m) if len > 0 => data[at(*p, len)] ^= m,
        Edit::Flip(..) => {}
        Edit::Insert(p, b) => {
            let i = at(*p, len + 1);
            data.splice(i..i, b.iter().copied());
        }
        Edit::Delete(p, n) => {
            let i = at(*p, len);
            data.drain(i..(i + n).min(len));
        }
        Edit::Truncate(p) => data.truncate(at(*p, len)),
        Edit::Token(p, n, t) => {
            let i = at(*p, len);
            let end = (i + n).min(len);
            data.splice(i..end, TOKENS[*t].bytes());
        }
        Edit::Duplicate(p, n, to) => {
            let i = at(*p, len);
            let chunk: Vec<u8> = data[i..(i + n).min(len)].to_vec();
            let j = at(*to, len + 1);
            data.splice(j..j, chunk);
        }
        Edit::Number(p, v) => {
            let i = at(*p, len);
            if let Some(start) = data[i..].iter().position(u8::is_ascii_digit).map(|s| s + i) {
                let end = data[start..]
                    .iter()
                    .position(|b| !b.is_ascii_digit())
                    .map_or(len, |e| e + start);
                data.splice(start..end, v.to_string().into_bytes());
            }
        }
    }
}

/// Inputs for a parser: random bytes, or one of `seeds` (valid encodings) with a few edits.
pub fn inputs(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Bytes> {
    let mutated = (
        prop::sample::select(seeds),
        prop::collection::vec(edit(), 1..6),
    )
        .prop_map(|(mut data, edits)| {
            for e in &edits {
                apply(&mut data, e);
            }
            data
        });
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..512),
        4 => mutated,
    ]
    .prop_map(Bytes)
}

#[test]
fn fuzz_pack_trailer() {
    repo_objects::pack_trailer();
}

#[test]
fn fuzz_pack_decryption() {
    repo_objects::pack_decryption();
}

#[test]
fn fuzz_sealed_pack_decryption() {
    repo_objects::sealed_pack_decryption();
}

#[test]
fn fuzz_index() {
    repo_objects::index();
}

#[test]
fn fuzz_tree() {
    repo_objects::tree();
}

#[test]
fn fuzz_snapshot() {
    repo_objects::snapshot();
}

#[test]
fn fuzz_config() {
    repo_objects::config();
}

#[test]
fn fuzz_drill_record() {
    repo_objects::drill_record();
}

#[test]
fn fuzz_interchange() {
    validator_docs::interchange();
}

#[test]
fn fuzz_keystore() {
    validator_docs::keystore();
}

#[test]
fn fuzz_sftp_url() {
    url::sftp_url();
}
