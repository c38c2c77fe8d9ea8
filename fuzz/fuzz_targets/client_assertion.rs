#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tessera::fuzzing::{client_assertion, Fixture};

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    Fixture::new(include_str!("../keys.json")).expect("fuzz/keys.json builds the fixture")
});

fuzz_target!(|data: &[u8]| {
    client_assertion(&FIXTURE, data);
});
