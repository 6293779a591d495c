//! The supervision tree the observer draws (`paxoskv::observer::tree::SERVER_TREE`) is
//! the one a server node really runs: the same supervisors with the same children in the
//! same order, each registered under its child id; and one look at a node through its
//! control process fills that tree in.

use paxoskv::observer::reading::{Cluster, Member};
use paxoskv::observer::tree::{self, SERVER_TREE, Shape};
use paxoskv::observer::view::NodeView;
use runtime::supervisor::which_children;
use runtime::transport::memory::Network;
use runtime::{NodeName, NodeRole, Process};
use std::time::Duration;

async fn check(me: &mut Process, shape: &Shape) {
    if shape.strategy.is_none() {
        return;
    }
    let node = me.node().clone();
    let children = which_children(me, shape.name)
        .await
        .unwrap_or_else(|e| panic!("{} answers which_children: {e}", shape.name));
    let ids: Vec<&str> = children.iter().map(|(id, _)| id.as_str()).collect();
    let expected: Vec<&str> = shape.children.iter().map(|c| c.name).collect();
    assert_eq!(ids, expected, "the children of {}", shape.name);
    for (id, pid) in &children {
        assert_eq!(
            node.whereis(id).as_ref(),
            pid.as_ref(),
            "{id} is registered under its child id"
        );
    }
    for child in shape.children {
        Box::pin(check(me, child)).await;
    }
}

#[tokio::test]
async fn the_drawn_tree_is_the_running_tree_and_a_look_fills_it_in() {
    let net = Network::new();
    let name = NodeName::new("observed@mem");
    let node = net.start_node(name.clone(), NodeRole::Server);
    let server = kv_app::start_server(&node, vec![name.clone()], Default::default())
        .await
        .expect("a server");
    let mut me = node.attach();
    check(&mut me, &SERVER_TREE).await;

    let cluster = Cluster {
        caller: node.clone(),
        members: vec![Member {
            name: name.to_string(),
            addr: ([127, 0, 0, 1], 1).into(),
        }],
    };
    let readings = cluster.read(Duration::from_secs(10)).await;
    let status = readings[0].status.as_ref().expect("the node answers");
    assert_eq!(status.mode, kv_app::app::storage_mode());
    assert_eq!(status.paxos.leader.as_deref(), Some("observed@mem"));
    let view = NodeView::of(&readings[0], Some("observed@mem"));
    assert!(view.leader);
    let drawn = view.tree.expect("a tree");
    let mut running = Vec::new();
    fn walk<'a>(t: &'a tree::TreeNode, out: &mut Vec<&'a tree::TreeNode>) {
        out.push(t);
        t.children.iter().for_each(|c| walk(c, out));
    }
    walk(&drawn, &mut running);
    assert_eq!(running.len(), tree::names(&SERVER_TREE).len());
    for t in running {
        assert_eq!(t.status, "running", "{}", t.name);
        assert_eq!(
            t.pid,
            node.whereis(&t.name).map(|p| p.to_string()),
            "{}",
            t.name
        );
    }
    drop(me);
    server.shutdown().await;
}
