#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::fuzzing::registration;

fuzz_target!(|data: &[u8]| {
    registration(data);
});
