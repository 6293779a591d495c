//! The call and return events of one key's operations in time order, as a doubly linked
//! list over arrays from which an operation's two events can be lifted out and put back
//! (dancing links), the way Wing & Gong's search walks them.

use super::history::Operation;

/// No node.
pub(crate) const NIL: usize = usize::MAX;
/// The list's head sentinel.
const HEAD: usize = 0;

/// Node 0 is the head; nodes `1..=2n` are the events in sorted order, so comparing node
/// numbers compares positions in time. An operation without an answer returns at
/// +infinity: its return node sits at the end.
pub(crate) struct EventList {
    pub next: Vec<usize>,
    prev: Vec<usize>,
    /// The operation of each node.
    pub op_of: Vec<usize>,
    pub is_call: Vec<bool>,
    pub call_node: Vec<usize>,
    pub return_node: Vec<usize>,
}

impl EventList {
    pub fn new(operations: &[&Operation]) -> Self {
        // (time, 0 for a call / 1 for a return, operation): at equal times calls come
        // first, so operations that touch count as concurrent.
        let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * operations.len());
        for (index, op) in operations.iter().enumerate() {
            events.push((op.call, 0, index));
            events.push((op.return_time().unwrap_or(u64::MAX), 1, index));
        }
        events.sort_unstable();
        let nodes = events.len() + 1;
        let mut list = EventList {
            next: (1..=nodes)
                .map(|n| if n == nodes { NIL } else { n })
                .collect(),
            prev: (0..nodes).map(|n| n.wrapping_sub(1)).collect(),
            op_of: vec![NIL; nodes],
            is_call: vec![false; nodes],
            call_node: vec![NIL; operations.len()],
            return_node: vec![NIL; operations.len()],
        };
        for (position, &(_, kind, op)) in events.iter().enumerate() {
            let node = position + 1;
            list.op_of[node] = op;
            list.is_call[node] = kind == 0;
            if kind == 0 {
                list.call_node[op] = node;
            } else {
                list.return_node[op] = node;
            }
        }
        list
    }

    /// The earliest event still in the list, or `NIL`.
    pub fn first(&self) -> usize {
        self.next[HEAD]
    }

    /// Takes an operation's call and return out of the list.
    pub fn lift(&mut self, op: usize) {
        self.unlink(self.call_node[op]);
        self.unlink(self.return_node[op]);
    }

    /// Puts back the most recently lifted operation (the reverse of `lift`).
    pub fn unlift(&mut self, op: usize) {
        self.relink(self.return_node[op]);
        self.relink(self.call_node[op]);
    }

    fn unlink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = next;
        if next != NIL {
            self.prev[next] = prev;
        }
    }

    /// `node` still remembers its neighbours from before it was unlinked.
    fn relink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = node;
        if next != NIL {
            self.prev[next] = node;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::history::parse_line;

    fn walk(list: &EventList) -> Vec<(usize, bool)> {
        let mut out = Vec::new();
        let mut node = list.first();
        while node != NIL {
            out.push((list.op_of[node], list.is_call[node]));
            node = list.next[node];
        }
        out
    }

    #[test]
    fn events_are_in_time_order_and_lift_and_unlift_undo_each_other() {
        let ops: Vec<_> = [
            r#"{"client":1,"op":"read","key":"k","ok":true,"result":"","call":0,"return":10}"#,
            r#"{"client":2,"op":"write","key":"k","value":"a","ok":false,"error":"timeout","call":5}"#,
            r#"{"client":3,"op":"read","key":"k","ok":true,"result":"","call":10,"return":12}"#,
        ]
        .iter()
        .map(|line| parse_line(line).unwrap())
        .collect();
        let refs: Vec<&Operation> = ops.iter().collect();
        let mut list = EventList::new(&refs);
        let all = vec![
            (0, true),
            (1, true),
            (2, true),
            (0, false),
            (2, false),
            (1, false),
        ];
        assert_eq!(
            walk(&list),
            all,
            "a call at the same time as a return comes first"
        );
        list.lift(0);
        list.lift(2);
        assert_eq!(walk(&list), vec![(1, true), (1, false)]);
        list.unlift(2);
        assert_eq!(
            walk(&list),
            vec![(1, true), (2, true), (2, false), (1, false)]
        );
        list.unlift(0);
        assert_eq!(walk(&list), all);
    }
}
