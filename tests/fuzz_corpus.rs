//! Replays what fuzzing found, on stable, through the same checks as the
//! fuzz targets (`pov::testing::CHECKS`): every file of `fuzz/corpus/<target>/`
//! (the minimised corpora) and every reproducer of `fuzz/regressions/<target>/`
//! (inputs that once broke an invariant). So CI keeps every bug the fuzzers
//! found fixed without running a fuzzer. `POV_FUZZ_DIR=<folder>/<target>`
//! replays one more folder (new artifacts, while triaging).
//!
//! A reproducer of a bug not fixed yet is listed in `OPEN` (with an
//! `#[ignore]` test giving the reason); `regressions_are_all_listed` makes
//! sure none is forgotten.

use std::path::{Path, PathBuf};

use crate::util::root;

fn check_of(target: &str) -> pov::testing::Check {
    pov::testing::CHECKS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no check for fuzz target `{target}`"))
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
    v.sort();
    v
}

/// Runs `check` on `data` in a thread with the main thread's stack (8 MiB),
/// as the `pov` binary would run it; `Err` with the panic message.
fn run_one(check: fn(&[u8]), data: Vec<u8>) -> Result<(), String> {
    let t = std::thread::Builder::new().stack_size(8 << 20).spawn(move || check(&data)).expect("spawn");
    t.join().map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into())
    })
}

/// Every file of `dir` through `target`'s check; panics naming each that
/// fails. Returns how many files there were.
fn replay_dir(target: &str, dir: &Path) -> usize {
    let check = check_of(target);
    let all = files(dir);
    let mut failed = Vec::new();
    for f in &all {
        let data = std::fs::read(f).expect("read corpus file");
        if let Err(e) = run_one(check, data) {
            failed.push(format!("{}: {e}", f.display()));
        }
    }
    assert!(failed.is_empty(), "{} of {} inputs fail:\n{}", failed.len(), all.len(), failed.join("\n"));
    all.len()
}

macro_rules! corpus_tests {
    ($($name:ident => $target:literal,)*) => {$(
        #[test]
        fn $name() {
            let n = replay_dir($target, &root().join("fuzz/corpus").join($target));
            assert!(n > 0, "fuzz/corpus/{} is empty", $target);
        }
    )*};
}

corpus_tests! {
    corpus_capture => "capture",
    corpus_frames => "frames",
    corpus_http => "http",
    corpus_pipeline => "pipeline",
    corpus_streams => "streams",
    corpus_sessions => "sessions",
    corpus_replay => "replay",
    corpus_report => "report",
    corpus_csv => "csv",
    corpus_config => "config",
}

/// Every reproducer under `fuzz/regressions/`, except those listed in
/// [`OPEN`] (each has its own ignored test).
#[test]
fn regressions() {
    let dir = root().join("fuzz/regressions");
    let mut n = 0;
    for (target, _) in pov::testing::CHECKS {
        let check = check_of(target);
        for f in files(&dir.join(target)) {
            let name = format!("{target}/{}", f.file_name().and_then(|n| n.to_str()).unwrap_or(""));
            if OPEN.iter().any(|(o, _)| *o == name) {
                continue;
            }
            let data = std::fs::read(&f).expect("read reproducer");
            if let Err(e) = run_one(check, data) {
                panic!("fuzz/regressions/{name} fails again: {e}");
            }
            n += 1;
        }
    }
    assert!(n > 0, "no reproducer under fuzz/regressions");
}

/// Reproducers of bugs not fixed yet: `target/file` and who fixes it. Give
/// each an `#[ignore]` test that replays it with the reason; when the bug
/// is fixed, remove both. (The first three, the HTTP resync's recursion and
/// copies, were fixed by the framing rewrite and are replayed above.)
const OPEN: &[(&str, &str)] = &[];

/// Every reproducer file of `fuzz/regressions/` is either replayed by
/// [`regressions`] or listed in [`OPEN`], and everything in [`OPEN`] exists.
#[test]
fn regressions_are_all_listed() {
    let dir = root().join("fuzz/regressions");
    for (name, _) in OPEN {
        assert!(dir.join(name).is_file(), "fuzz/regressions/{name} is listed but missing");
    }
    for e in std::fs::read_dir(&dir).expect("fuzz/regressions") {
        let p = e.expect("entry").path();
        let target = p.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
        assert!(p.is_dir(), "{}: reproducers go in a folder named after their target", p.display());
        assert!(pov::testing::CHECKS.iter().any(|(t, _)| *t == target), "fuzz/regressions/{target}: no such target");
    }
}

/// `POV_FUZZ_DIR=<folder>/<target>`: replays that folder (for triage).
#[test]
fn extra_folder() {
    let Some(dir) = std::env::var_os("POV_FUZZ_DIR") else { return };
    let dir = PathBuf::from(dir);
    let target = dir.file_name().and_then(|n| n.to_str()).expect("a folder named after its target").to_string();
    replay_dir(&target, &dir);
}
