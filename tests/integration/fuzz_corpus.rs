//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/*`) through the
//! same entry points as the cargo-fuzz targets, so the corpus runs on the
//! stable toolchain. `write_seed_corpus` (ignored) writes fresh seeds.

use std::fs;
use std::path::{Path, PathBuf};

use tessera::fuzzing::{self, Fixture, TARGETS};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn fixture() -> Fixture {
    let keys = fs::read_to_string(fuzz_dir().join("keys.json")).unwrap();
    Fixture::new(&keys).unwrap()
}

#[test]
fn corpus_replays_without_panic() {
    let fixture = fixture();
    for target in TARGETS {
        let folder = fuzz_dir().join("corpus").join(target);
        let mut files = 0;
        let mut accepted = 0;
        for entry in fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            let input = fs::read(&path).unwrap();
            files += 1;
            if fuzzing::run(target, &fixture, &input).unwrap() {
                accepted += 1;
            }
        }
        assert!(files > 0, "{} is empty", folder.display());
        assert!(accepted > 0, "no file in {} is accepted", folder.display());
    }
}

#[test]
fn every_fuzz_target_is_replayed() {
    for entry in fs::read_dir(fuzz_dir().join("fuzz_targets")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        assert!(TARGETS.contains(&name.as_str()), "{name} is not in TARGETS");
    }
    for entry in fs::read_dir(fuzz_dir().join("corpus")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            TARGETS.contains(&name.as_str()),
            "corpus/{name} has no target"
        );
    }
}

#[test]
fn seeds_meet_their_expectation() {
    let fixture = fixture();
    let seeds = fuzzing::seeds(&fixture).unwrap();
    for target in TARGETS {
        assert!(seeds.iter().any(|seed| seed.target == target), "{target}");
    }
    for seed in seeds {
        let accepted = fuzzing::run(seed.target, &fixture, &seed.bytes).unwrap();
        assert_eq!(accepted, seed.accepted, "{}/{}", seed.target, seed.name);
    }
}

#[test]
fn fixture_clock_is_frozen() {
    assert_eq!(fuzzing::now().timestamp(), fuzzing::NOW);
}

/// Writes `fuzz/keys.json` when it is missing, then one file per seed into
/// `fuzz/corpus/<target>/`.
#[test]
#[ignore = "writes into fuzz/; run by hand to refresh the seeds"]
fn write_seed_corpus() {
    let keys = fuzz_dir().join("keys.json");
    if !keys.exists() {
        fs::write(&keys, fuzzing::generate_keys().unwrap()).unwrap();
    }
    let fixture = fixture();
    for seed in fuzzing::seeds(&fixture).unwrap() {
        let folder = fuzz_dir().join("corpus").join(seed.target);
        fs::create_dir_all(&folder).unwrap();
        fs::write(folder.join(format!("seed-{}", seed.name)), &seed.bytes).unwrap();
    }
}
