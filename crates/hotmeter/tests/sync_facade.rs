//! Only `src/sync.rs` may name std's or loom's atomics and mutexes: every
//! other module imports them from `crate::sync`, so the loom build swaps all
//! of them. (clippy's `disallowed-types` cannot tell a re-export from a
//! direct use, so this reads the sources instead.)

use std::path::Path;

#[test]
fn only_sync_rs_names_atomics_and_mutexes() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let forbidden = ["std::sync::atomic", "core::sync::atomic", "loom::", "std::sync::Mutex", "std::sync::{"];
    let mut checked = 0;
    let mut offences = Vec::new();
    for entry in std::fs::read_dir(&src).expect("src/ is readable") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_none_or(|e| e != "rs") || path.file_name().is_some_and(|n| n == "sync.rs") {
            continue;
        }
        checked += 1;
        let text = std::fs::read_to_string(&path).expect("source is UTF-8");
        for (n, line) in text.lines().enumerate() {
            if forbidden.iter().any(|f| line.contains(f)) {
                offences.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(checked >= 10, "expected the crate's modules under {}, found {checked}", src.display());
    assert!(offences.is_empty(), "use crate::sync instead:\n{}", offences.join("\n"));
}
