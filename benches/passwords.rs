//! argon2id verification at the default parameters (`argon2` in the
//! configuration), the cost of every password login.
//!
//! `cargo bench --bench passwords`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use tessera::accounts::password::PasswordHasher;
use tessera::config::Config;

fn verify(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let params = Config::default().argon2;
    let hasher = runtime.block_on(PasswordHasher::new(&params)).unwrap();
    let stored = runtime
        .block_on(hasher.hash("correct horse battery staple"))
        .unwrap();
    let name = format!(
        "argon2id_verify/m={}KiB,t={},p={}",
        params.memory_kib, params.iterations, params.parallelism
    );
    let mut group = c.benchmark_group("passwords");
    group.sample_size(20);
    group.bench_function(name, |b| {
        b.to_async(&runtime).iter(|| async {
            let checked = hasher.verify("correct horse battery staple", Some(&stored), "bench");
            assert!(checked.await.unwrap().matched);
        })
    });
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
