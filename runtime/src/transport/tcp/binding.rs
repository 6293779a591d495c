//! A connection speaks for one node: the one that proved itself in the handshake. Every
//! pid, link, monitor and destination in a frame from it must name either that node (as
//! the sender's side) or this node (as the receiving side); a frame that names any other
//! node is forged and dropped (and counted) before the node sees it.

use crate::pid::{Dest, NodeName, Pid};
use crate::transport::Wire;

/// Whether `wire`, received from `peer` by `me`, names only the nodes it may.
pub(crate) fn names_bound(wire: &Wire, peer: &NodeName, me: &NodeName) -> bool {
    let theirs = |p: &Pid| p.node() == peer;
    let ours = |p: &Pid| p.node() == me;
    let here = |d: &Dest| match d {
        Dest::Pid(p) => ours(p),
        Dest::Name(_) => true,
        Dest::Remote(_, n) => n == me,
    };
    match wire {
        Wire::Msg { from, to, .. } => from.as_ref().is_none_or(theirs) && here(to),
        Wire::Link { from, to } | Wire::Unlink { from, to } | Wire::Exit { from, to, .. } => {
            theirs(from) && ours(to)
        }
        Wire::Monitor {
            watcher, target, ..
        } => theirs(watcher) && here(target),
        Wire::Demonitor { watcher, .. } => theirs(watcher),
        Wire::Down { watcher, pid, .. } => ours(watcher) && theirs(pid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pid::Ref;
    use crate::reason::ExitReason;

    fn pid(node: &str) -> Pid {
        Pid {
            node: NodeName::new(node),
            id: 1,
            creation: 1,
        }
    }

    #[test]
    fn only_the_peer_and_this_node_may_be_named() {
        let (peer, me) = (NodeName::new("p@h"), NodeName::new("m@h"));
        let ok = |w: &Wire| names_bound(w, &peer, &me);
        let msg = |from: &str, to: Dest| Wire::Msg {
            from: Some(pid(from)),
            to,
            tag: 1,
            body: vec![],
            control: false,
        };
        assert!(ok(&msg("p@h", Dest::Pid(pid("m@h")))));
        assert!(ok(&msg("p@h", Dest::Name("kv".into()))));
        assert!(ok(&msg("p@h", Dest::Remote("kv".into(), me.clone()))));
        assert!(!ok(&msg("x@h", Dest::Name("kv".into()))));
        assert!(!ok(&msg("p@h", Dest::Pid(pid("x@h")))));
        assert!(!ok(&msg(
            "p@h",
            Dest::Remote("kv".into(), NodeName::new("x@h"))
        )));
        assert!(ok(&Wire::Link {
            from: pid("p@h"),
            to: pid("m@h")
        }));
        assert!(!ok(&Wire::Link {
            from: pid("x@h"),
            to: pid("m@h")
        }));
        assert!(!ok(&Wire::Exit {
            from: pid("p@h"),
            to: pid("x@h"),
            reason: ExitReason::Kill,
            link: false
        }));
        assert!(!ok(&Wire::Monitor {
            watcher: pid("x@h"),
            target: Dest::Name("kv".into()),
            mref: Ref(1)
        }));
        assert!(ok(&Wire::Down {
            watcher: pid("m@h"),
            mref: Ref(1),
            pid: pid("p@h"),
            reason: ExitReason::Normal
        }));
        assert!(!ok(&Wire::Down {
            watcher: pid("m@h"),
            mref: Ref(1),
            pid: pid("x@h"),
            reason: ExitReason::Normal
        }));
    }
}
