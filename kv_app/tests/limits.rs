//! Limits on keys, values and batches: an oversized value is refused at once with an
//! error naming the limit, by the client before sending and by the server for a client
//! that did not check; big writes at once over TCP are cut into batches that fit a frame
//! and all complete.

mod common;

use common::{Cluster, LONG, within};
use kv_app::limits::{DEFAULT_MAX_VALUE, Limits, TooLarge};
use kv_app::messages::{KV_SERVER, Request, RequestAnswer};
use kv_app::ops::{OpRef, Operation};
use kv_app::{ClientError, ClientTimeouts, ServerOptions};
use runtime::transport::tcp::{TcpConfig, TcpTransport, start_node};
use runtime::{NodeName, NodeRole};
use std::net::SocketAddr;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_value_is_refused_at_once_by_the_client_and_by_the_server() {
    let c = Cluster::new("limits", 3).await;
    let ck = c.client_all();
    let big = "v".repeat(DEFAULT_MAX_VALUE + 1);
    let sent_before: u64 = (0..3).map(|i| c.node(i).stats().received).sum();
    let refused = within("client refusal", ck.write("k", &big)).await;
    match &refused {
        Err(ClientError::TooLarge(TooLarge::Value { len, max })) => {
            assert_eq!((*len, *max), (DEFAULT_MAX_VALUE + 1, DEFAULT_MAX_VALUE));
        }
        other => panic!("expected a value-too-large refusal, got {other:?}"),
    }
    let text = refused.unwrap_err().to_string();
    let limit = format!("over the limit of {DEFAULT_MAX_VALUE} bytes");
    assert!(text.contains(&limit), "{text}");
    assert!(!text.contains("may still take effect"), "{text}");
    // Nothing reached a server.
    let sent_after: u64 = (0..3).map(|i| c.node(i).stats().received).sum();
    assert_eq!(sent_before, sent_after);

    // A client with larger limits than the server's is refused by the server.
    let lax = c.client_all().with_limits(Limits {
        max_value: 8 * DEFAULT_MAX_VALUE,
        ..Limits::default()
    });
    let refused = within("server refusal", lax.write("k", &big)).await;
    assert!(
        matches!(refused, Err(ClientError::TooLarge(TooLarge::Value { .. }))),
        "{refused:?}"
    );
    // And the raw answer names the operation and the limit.
    let node = c.net.start_node("limits-raw@mem", NodeRole::Client);
    let mut me = node.attach();
    let reference = OpRef { client: 9, seq: 1 };
    me.send(
        (KV_SERVER, &c.names[1]),
        Request {
            op: Operation::write("k", big.clone(), reference),
            client: me.pid().clone(),
        },
    );
    let answer = me
        .receive_type::<RequestAnswer>(Some(LONG))
        .await
        .expect("an answer");
    assert_eq!(
        answer,
        RequestAnswer::TooLarge(
            reference,
            TooLarge::Value {
                len: DEFAULT_MAX_VALUE + 1,
                max: DEFAULT_MAX_VALUE
            }
        )
    );
    // The key is untouched and the service goes on.
    assert_eq!(within("read", ck.read("k")).await.unwrap(), "");
    assert_eq!(
        within("write", ck.write("k", "small")).await.unwrap(),
        "small"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_concurrent_near_limit_writes_over_tcp_all_complete() {
    let _ = env_logger::builder().is_test(true).try_init();
    // Values of 5 MiB: three in one batch would be over the 16 MiB frame limit; the
    // batch byte bound sends them in separate instances. An unoptimised build moves
    // megabytes too slowly for a loaded machine's heartbeats: it writes 1 MiB values
    // instead.
    let mib = if cfg!(debug_assertions) { 1 } else { 5 };
    let limits = Limits {
        max_value: mib * 1024 * 1024,
        ..Limits::default()
    };
    let opts = ServerOptions {
        limits,
        ..ServerOptions::default()
    };
    let cookie = "limits-cookie";
    let any: SocketAddr = ([127, 0, 0, 1], 0).into();
    let names: Vec<NodeName> = (0..3)
        .map(|i| NodeName::new(format!("lim{i}@127.0.0.1")))
        .collect();
    let mut nodes = Vec::new();
    for name in &names {
        let cfg = TcpConfig::new(cookie).listen(any).members(names.clone());
        let started = TcpTransport::start(name.clone(), NodeRole::Server, cfg)
            .await
            .expect("node starts");
        nodes.push(started);
    }
    let book: Vec<(NodeName, SocketAddr)> = nodes
        .iter()
        .map(|(n, t)| (n.name().clone(), t.local_addr().expect("listening")))
        .collect();
    for (_, t) in &nodes {
        for (name, addr) in &book {
            t.add_peer(name.clone(), *addr);
        }
    }
    let mut servers = Vec::new();
    for (node, _) in &nodes {
        servers.push(
            kv_app::start_server(node, names.clone(), opts)
                .await
                .expect("kv starts"),
        );
    }
    let client_cfg = book.iter().fold(TcpConfig::new(cookie), |cfg, (n, a)| {
        cfg.peer(n.clone(), *a)
    });
    let (client_node, _) = start_node("lim-client@127.0.0.1", NodeRole::Client, client_cfg)
        .await
        .expect("client node starts");
    // Patient: a server's Ok for a request of megabytes takes a while on a loaded
    // machine, and each retry would send the megabytes again.
    let timeouts = ClientTimeouts {
        ask: Duration::from_secs(5),
        result: Duration::from_secs(10),
        longest_result: Duration::from_secs(20),
    };
    let writes: Vec<_> = (0..3)
        .map(|i| {
            let client = kv_app::client::start_unregistered(&client_node, names.clone(), timeouts)
                .with_limits(limits);
            let value = char::from(b'a' + i as u8)
                .to_string()
                .repeat(limits.max_value);
            tokio::spawn(async move {
                let key = format!("big{i}");
                let deadline = Some(Duration::from_secs(90));
                let got = client
                    .run(kv_app::ops::OpKind::Write, &key, &value, deadline)
                    .await;
                (key, value, got)
            })
        })
        .collect();
    let mut results = Vec::new();
    for w in writes {
        results.push(w.await.expect("write task"));
    }
    for (key, value, got) in &results {
        match got {
            Ok(v) => assert!(v == value, "{key}: another value came back"),
            Err(e) => panic!("{key}: {e}"),
        }
    }
    // Each value is read back whole through another client.
    let reader = kv_app::client::start_unregistered(&client_node, names.clone(), timeouts)
        .with_limits(limits);
    for (key, value, _) in &results {
        let got = within("read back", reader.read(key)).await.expect("read");
        assert!(got == *value, "{key} read back wrong ({} bytes)", got.len());
    }
    for (_, t) in &nodes {
        assert_eq!(t.stats().overflowed, 0);
    }
    for s in &servers {
        s.shutdown().await;
    }
    client_node.stop();
}
