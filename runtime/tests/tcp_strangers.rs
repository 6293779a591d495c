//! Strangers without the cookie against a TCP node: many connections with unique long
//! names and bad proofs, and more idle connections than the handshake limit. Nothing of
//! theirs is kept (no name interned, no role, no table or address-book entry), the
//! handshake slots come back, and the log gets a few lines, not one per connection.
//!
//! Alone in its test binary: node names are interned per OS process, and this test
//! counts them exactly.

use runtime::NodeRole;
use runtime::pid::interned_count;
use runtime::transport::tcp::frame;
use runtime::transport::tcp::handshake::{
    Answer, Handshake, Hello, MAX_HANDSHAKE_FRAME, PROTOCOL_VERSION,
};
use runtime::transport::tcp::{TcpConfig, TcpTransport, Tuning};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(20);

/// One stranger: a `Hello` with a unique name of `len` bytes, then a bogus proof.
async fn stranger(addr: SocketAddr, i: usize, len: usize) {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return;
    };
    let prefix = format!("stranger-{i}-");
    let name = format!("{prefix}{}", "x".repeat(len.saturating_sub(prefix.len())));
    let hello = Handshake::Hello(Hello {
        version: PROTOCOL_VERSION,
        name,
        role: NodeRole::Server,
        listen: Some(([127, 0, 0, 1], 9).into()),
        incarnation: i as u64,
        recovered: false,
        members: None,
        nonce: [i as u8; 32],
        to: None,
    });
    if frame::write_message(&mut s, &hello).await.is_err() {
        return;
    }
    // The listener's Hello (or a refusal for a bad name), then a proof it rejects.
    let _ = frame::read_message::<Handshake, _>(&mut s, MAX_HANDSHAKE_FRAME).await;
    let bogus = Handshake::Proof(Answer {
        mac: [7; 32],
        token: [0; 32],
        verdict: None,
    });
    let _ = frame::write_message(&mut s, &bogus).await;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut rest)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_leave_nothing_behind_and_few_log_lines() {
    let _ = env_logger::builder().is_test(true).try_init();
    let cfg = TcpConfig {
        max_handshakes: 16,
        ..TcpConfig::new("the-real-cookie").listen(([127, 0, 0, 1], 0).into())
    };
    let tuning = Tuning {
        handshake_timeout: Duration::from_secs(2),
        ..Tuning::default()
    };
    let (node, t) = TcpTransport::start_tuned("target@127.0.0.1", NodeRole::Server, cfg, tuning)
        .await
        .expect("starts");
    let addr = t.local_addr().expect("listening");
    let names_before = interned_count();

    // 600 strangers, 20 at a time: names of 200 bytes (valid, refused at the proof) and
    // of 2,000 bytes (refused at once as too long).
    for batch in 0..30 {
        let mut tasks = Vec::new();
        for j in 0..20 {
            let i = batch * 20 + j;
            let len = if i % 2 == 0 { 200 } else { 2000 };
            tasks.push(tokio::spawn(stranger(addr, i, len)));
        }
        for task in tasks {
            task.await.expect("stranger task");
        }
    }

    // 100 idle connections that never speak: at most 16 wait in the handshake, the rest
    // are closed at once.
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let deadline = Instant::now() + WAIT;
    while t.stats().refused < 600 + 84 {
        assert!(Instant::now() < deadline, "{:?}", t.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(t.stats().handshakes <= 16, "{:?}", t.stats());
    // The idle ones in the handshake time out and give their slots back.
    while t.stats().handshakes > 0 {
        assert!(Instant::now() < deadline, "{:?}", t.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(idle);

    let stats = t.stats();
    println!("{stats:?}");
    assert_eq!(
        interned_count(),
        names_before,
        "a stranger's name was interned"
    );
    assert_eq!(
        (stats.roles, stats.table, stats.book),
        (0, 0, 0),
        "{stats:?}"
    );
    assert!(stats.refused >= 700, "{stats:?}");
    // One line per cause (wrong cookies, failed handshakes, the handshake limit,
    // timeouts) within the warning interval.
    assert!(stats.warnings_logged <= 4, "{stats:?}");
    assert!(stats.warnings_held_back >= 690, "{stats:?}");
    node.stop();
}
