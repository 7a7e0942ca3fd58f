//! A deterministic, always-on cousin of the fuzz target (`fuzz/`): thousands of mutated copies of
//! the regression corpus go through `probe` and `render`. Each must give outputs or a typed error,
//! and no decoder may panic (the engine turns a decoder panic into a `corrupt` error with a fixed
//! message, which this test refuses).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use safelight_engine::{probe, render, Limits, OutputFormat, Spec};

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, original: &[u8]) -> Vec<u8> {
    let mut b = original.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = [0x00, 0xFF, 0x7F, 0x80][rng.below(4)];
            }
            2 => b.truncate(rng.below(b.len() + 1)),
            3 => {
                let i = rng.below(b.len() + 1);
                b.insert(i, 0xFF);
            }
            // Header-heavy: most interesting structure lives in the first 64 bytes.
            4 if b.len() > 8 => {
                let i = rng.below(b.len().min(64));
                b[i] = rng.next() as u8;
            }
            _ if b.len() > 2 => {
                let i = rng.below(b.len() - 1);
                b.swap(i, i + 1);
            }
            _ => {}
        }
    }
    b
}

#[test]
fn mutated_corpus_files_never_panic_and_always_give_outputs_or_typed_errors() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| ["jpg", "png", "gif", "webp"].contains(&e.to_str().unwrap_or("")))
        })
        .filter(|p| std::fs::metadata(p).unwrap().len() < 4096)
        .collect();
    files.sort();
    assert!(files.len() > 15, "corpus found: {}", files.len());
    let limits = Limits {
        max_pixels: 1_000_000,
        max_side: 2048,
        ..Limits::default()
    };
    let specs = [
        Spec::new(32, OutputFormat::Jpeg),
        Spec::new(16, OutputFormat::Webp),
    ];
    let mut rng = Rng(0x5AFE_116E_u64);
    let (mut ok, mut failed) = (0, 0);
    for path in &files {
        let original = std::fs::read(path).unwrap();
        for i in 0..150 {
            let bytes = mutate(&mut rng, &original);
            let probed = probe(&bytes, &limits);
            match render(&bytes, &specs, &limits) {
                Ok(r) => {
                    ok += 1;
                    assert_eq!(Ok(r.source), probed, "{} mutation {i}", path.display());
                    assert!(r
                        .outputs
                        .iter()
                        .all(|o| !o.bytes.is_empty() && o.width.max(o.height) <= 32));
                }
                Err(e) => {
                    failed += 1;
                    assert!(
                        !e.to_string()
                            .contains("the decoder failed on malformed data"),
                        "a decoder panicked on {} mutation {i}: {bytes:02x?}",
                        path.display()
                    );
                }
            }
        }
    }
    // Both outcomes must occur, or the mutations are not reaching the decoders.
    assert!(ok > 100 && failed > 100, "ok {ok}, failed {failed}");
}
