#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tessera::fuzzing::{bearer_token, Fixture};

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    Fixture::new(include_str!("../keys.json")).expect("fuzz/keys.json builds the fixture")
});

fuzz_target!(|data: &[u8]| {
    bearer_token(&FIXTURE, data);
});
