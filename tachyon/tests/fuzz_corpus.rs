//! Replays every committed fuzz corpus (`tachyon/fuzz/corpus/<target>/`) through its
//! target function, uninstrumented: the inputs fuzzing found interesting, and every crash
//! it ever found, stay regression tests. `make fuzz` grows the corpora.

use std::path::Path;

#[test]
fn every_corpus_replays_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join("corpus");
    let mut total = 0;
    for (name, target) in tachyon::__fuzz::TARGETS {
        let dir = root.join(name);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
            panic!("no corpus for fuzz target {name} at {}: {e}", dir.display())
        });
        let mut n = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name}: {} panicked", path.display());
            n += 1;
        }
        assert!(n > 0, "the corpus of {name} is empty");
        total += n;
    }
    eprintln!("replayed {total} corpus inputs over {} targets", tachyon::__fuzz::TARGETS.len());
}
