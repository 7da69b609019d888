//! Only `src/sync.rs` may name std's or loom's synchronisation primitives
//! (atomics, mutexes, once-initialised cells): every other module imports
//! them from `crate::sync`, so the loom build swaps all of them and the
//! models see every shared structure. (clippy's `disallowed-types` cannot
//! tell a re-export from a direct use, so this reads the sources instead,
//! every file under `src/`, submodules included.)

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source directory is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Lines (1-based) that name a primitive other than through `crate::sync`.
fn offending_lines(text: &str) -> Vec<(usize, &str)> {
    const FORBIDDEN: [&str; 7] = [
        "std::sync::",
        "core::sync::",
        "loom::",
        "std::cell::OnceCell",
        "std::thread_local",
        "thread_local!",
        "lazy_static",
    ];
    text.lines()
        .enumerate()
        .filter(|(_, line)| FORBIDDEN.iter().any(|f| line.contains(f)))
        .map(|(n, line)| (n + 1, line.trim()))
        .collect()
}

#[test]
fn only_sync_rs_names_synchronisation_primitives() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut checked = 0;
    let mut offences = Vec::new();
    for path in files {
        if path.file_name().is_some_and(|n| n == "sync.rs") {
            continue;
        }
        checked += 1;
        let text = std::fs::read_to_string(&path).expect("source is UTF-8");
        for (n, line) in offending_lines(&text) {
            offences.push(format!("{}:{}: {}", path.display(), n, line));
        }
    }
    assert!(checked >= 10, "expected the crate's modules under {}, found {checked}", src.display());
    assert!(offences.is_empty(), "use crate::sync instead:\n{}", offences.join("\n"));
}

#[test]
fn direct_uses_are_offences() {
    let text = "use crate::sync::{OnceLock, Arc};\n    exemplars: std::sync::OnceLock<ExemplarSlots>,\nstatic X: core::sync::atomic::AtomicU8;\nthread_local! { }\n";
    let found: Vec<usize> = offending_lines(text).into_iter().map(|(n, _)| n).collect();
    assert_eq!(found, [2, 3, 4]);
}
