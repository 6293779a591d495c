//! A seeded fuzzing run of every decoder of network bytes, in the default suite: random
//! byte strings, and valid frames and handshake messages with bytes flipped, cut and
//! spliced, through the frame splitter, the frame and handshake decoders and the
//! acceptor's side of the handshake. None may panic or hang. The seed is printed; replay
//! one with `DECODER_FUZZ_SEED=<seed>`, and make a run longer with
//! `DECODER_FUZZ_CASES=<n>` (the long run in docs/testing.md). The same entry points
//! are the cargo-fuzz targets in `fuzz/`.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use runtime::transport::Wire;
use runtime::transport::tcp::frame::{encode, encode_wire, tick_frame};
use runtime::transport::tcp::fuzzing;
use runtime::transport::tcp::handshake::{Answer, Handshake, Hello, PROTOCOL_VERSION, Refusal};
use runtime::{Dest, NodeName, NodeRole};

fn seed() -> u64 {
    let seed = std::env::var("DECODER_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("decoder fuzzing: seed {seed} (replay with DECODER_FUZZ_SEED={seed})");
    seed
}

fn runner(cases: u32) -> TestRunner {
    let cases = std::env::var("DECODER_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(cases);
    TestRunner::new(Config {
        cases,
        rng_seed: RngSeed::Fixed(seed()),
        failure_persistence: None,
        ..Config::default()
    })
}

/// Valid encodings to mutate: frames of each kind and handshake messages.
fn samples() -> Vec<Vec<u8>> {
    let hello = Hello {
        version: PROTOCOL_VERSION,
        name: "s1@127.0.0.1".into(),
        role: NodeRole::Server,
        listen: Some(([127, 0, 0, 1], 7101).into()),
        incarnation: 42,
        recovered: false,
        members: Some([3; 32]),
        nonce: [9; 32],
        to: Some("s2@127.0.0.1".into()),
    };
    let answer = Answer {
        mac: [1; 32],
        token: [2; 32],
        verdict: Some(Refusal::Membership),
    };
    let mut out = vec![
        encode(&Handshake::Hello(hello)).expect("encodes"),
        encode(&Handshake::Proof(answer.clone())).expect("encodes"),
        encode(&Handshake::Welcome(answer)).expect("encodes"),
        encode(&Handshake::Refused(Refusal::Restarted)).expect("encodes"),
        tick_frame(),
    ];
    let to = Dest::Remote("kv_server".into(), NodeName::new("fuzz-me@h"));
    out.push(
        encode_wire(&Wire::Msg {
            from: None,
            to,
            tag: 7,
            body: vec![5; 40],
            control: false,
        })
        .expect("encodes"),
    );
    out
}

/// A valid sample with some bytes changed, cut short, or with random bytes spliced in.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let samples = samples();
    (
        0..samples.len(),
        prop::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        any::<usize>(),
        prop::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(move |(which, flips, cut, splice)| {
            let mut bytes = samples[which].clone();
            for (at, b) in flips {
                if !bytes.is_empty() {
                    let i = at % bytes.len();
                    bytes[i] ^= b;
                }
            }
            let cut = cut % (bytes.len() + 1);
            bytes.truncate(cut.max(bytes.len() / 2));
            bytes.extend(splice);
            bytes
        })
}

fn inputs() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![prop::collection::vec(any::<u8>(), 0..512), mutated()]
}

#[test]
fn the_frame_splitter_and_decoders_take_any_bytes() {
    let mut r = runner(4000);
    r.run(&inputs(), |bytes| {
        let _ = fuzzing::frame_stream(&bytes);
        // Without the length prefix, as the decoders see a body.
        let body = bytes.get(4..).unwrap_or(&[]);
        let _ = fuzzing::frame_body(body);
        let _ = fuzzing::handshake_message(body);
        Ok(())
    })
    .expect("no decoder panics");
}

#[test]
fn the_acceptor_takes_any_bytes_and_never_lets_them_through() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut r = runner(1000);
    r.run(&inputs(), |bytes| {
        let passed = rt.block_on(async {
            tokio::time::timeout(
                std::time::Duration::from_secs(10),
                fuzzing::acceptor(&bytes),
            )
            .await
            .expect("the acceptor never hangs")
        });
        prop_assert!(!passed, "bytes without the cookie passed the handshake");
        Ok(())
    })
    .expect("the acceptor refuses every input");
}
