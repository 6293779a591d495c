//! Supervisors: the three strategies, the three restart types, restart intensity and its
//! escalation, shutdown in reverse start order (with a child that has to be killed),
//! restart counts in introspection, the query API, and a failing child start.

use runtime::gen_server::{self, CallResult, GenServer, ReplyTo, StartError};
use runtime::supervisor::{
    self, ChildSpec, Restart, Shutdown, Strategy, SupervisorError, SupervisorSpec,
};
use runtime::transport::memory::Network;
use runtime::{Dest, Down, Exit, ExitReason, Node, NodeRole, Pid, Process, Ref};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

const GENEROUS: Duration = Duration::from_secs(10);

/// Orders to a test worker.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Cmd {
    /// Exit with reason `crash`.
    Crash,
    /// Exit `normal`.
    Quit,
}

type Log = Arc<Mutex<Vec<String>>>;

/// A plain linked worker: obeys `Cmd`; when trapping exits it records the exit signal in
/// the log and ends with its reason, unless it is stubborn.
#[derive(Clone, Default)]
struct Worker {
    id: &'static str,
    log: Log,
    trap: bool,
    stubborn: bool,
}

impl Worker {
    fn new(id: &'static str) -> Self {
        Worker {
            id,
            ..Default::default()
        }
    }

    fn spec(&self) -> ChildSpec {
        let w = self.clone();
        ChildSpec::new(self.id, move |sup| {
            let w = w.clone();
            Ok(sup.spawn_link(move |p| w.run(p)))
        })
    }

    async fn run(self, mut p: Process) -> ExitReason {
        if self.trap {
            p.trap_exit(true);
        }
        loop {
            let env = p.recv().await;
            let env = match env.downcast::<Cmd>() {
                Ok(Cmd::Crash) => return ExitReason::custom("crash"),
                Ok(Cmd::Quit) => return ExitReason::Normal,
                Err(env) => env,
            };
            if let Ok(exit) = env.downcast::<Exit>() {
                self.log.lock().expect("log lock").push(self.id.to_string());
                if !self.stubborn {
                    return exit.reason;
                }
            }
        }
    }
}

/// A gen_server child that records its `terminate` in the log.
struct Echo {
    log: Log,
}

impl GenServer for Echo {
    type Call = String;
    type Reply = String;
    type Cast = ();

    fn init(&mut self, ctx: &mut Process) -> Result<(), ExitReason> {
        ctx.trap_exit(true);
        Ok(())
    }

    fn handle_call(
        &mut self,
        req: String,
        _: ReplyTo<String>,
        _: &mut Process,
    ) -> CallResult<String> {
        CallResult::Reply(req)
    }

    fn terminate(&mut self, reason: &ExitReason, _: &mut Process) {
        self.log
            .lock()
            .expect("log lock")
            .push(format!("echo:{reason}"));
    }
}

fn node() -> Node {
    Network::new().start_node("a@test", NodeRole::Server)
}

fn spec(strategy: Strategy, workers: &[&Worker]) -> SupervisorSpec {
    workers
        .iter()
        .fold(SupervisorSpec::new(strategy), |s, w| s.child(w.spec()))
        .intensity(10, Duration::from_secs(60))
}

async fn children(me: &mut Process, sup: impl Into<Dest>) -> Vec<(String, Option<Pid>)> {
    supervisor::which_children(me, sup)
        .await
        .expect("which_children")
}

fn pid_of(children: &[(String, Option<Pid>)], id: &str) -> Option<Pid> {
    children
        .iter()
        .find(|(i, _)| i == id)
        .and_then(|(_, p)| p.clone())
}

async fn down_reason(p: &mut Process, mref: Ref) -> ExitReason {
    p.receive_match::<Down>(Some(GENEROUS), |d| d.mref == mref)
        .await
        .expect("a Down within the deadline")
        .reason
}

/// Makes a child exit by `cmd` and waits until it is gone. The supervisor has its exit
/// signal by then (links fire before monitors), so a later query sees the restart done.
async fn make_exit(me: &mut Process, pid: &Pid, cmd: Cmd) {
    let mref = me.monitor(pid);
    me.send(pid, cmd);
    down_reason(me, mref).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_for_one_restarts_only_the_crashed_child() {
    let node = node();
    let mut me = node.attach();
    let (a, b, c) = (Worker::new("a"), Worker::new("b"), Worker::new("c"));
    let sup = supervisor::start_link(&me, spec(Strategy::OneForOne, &[&a, &b, &c]), None)
        .await
        .expect("started");
    let before = children(&mut me, &sup).await;
    let ids: Vec<&str> = before.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"], "children in start order");
    let old_b = pid_of(&before, "b").expect("b runs");
    make_exit(&mut me, &old_b, Cmd::Crash).await;
    let after = children(&mut me, &sup).await;
    assert_eq!(pid_of(&after, "a"), pid_of(&before, "a"));
    assert_eq!(pid_of(&after, "c"), pid_of(&before, "c"));
    let new_b = pid_of(&after, "b").expect("b restarted");
    assert_ne!(new_b, old_b);
    assert!(node.is_alive(&new_b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_for_all_restarts_every_child() {
    let node = node();
    let mut me = node.attach();
    let (a, b, c) = (Worker::new("a"), Worker::new("b"), Worker::new("c"));
    let sup = supervisor::start_link(&me, spec(Strategy::OneForAll, &[&a, &b, &c]), None)
        .await
        .expect("started");
    let before = children(&mut me, &sup).await;
    make_exit(&mut me, &pid_of(&before, "b").expect("b runs"), Cmd::Crash).await;
    let after = children(&mut me, &sup).await;
    for id in ["a", "b", "c"] {
        let old = pid_of(&before, id).expect("ran before");
        let new = pid_of(&after, id).expect("runs after");
        assert_ne!(old, new, "{id} was not restarted");
        assert!(!node.is_alive(&old), "old {id} still alive");
        assert!(node.is_alive(&new));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_for_one_restarts_the_crashed_child_and_those_after_it() {
    let node = node();
    let mut me = node.attach();
    let (a, b, c) = (Worker::new("a"), Worker::new("b"), Worker::new("c"));
    let sup = supervisor::start_link(&me, spec(Strategy::RestForOne, &[&a, &b, &c]), None)
        .await
        .expect("started");
    let before = children(&mut me, &sup).await;
    make_exit(&mut me, &pid_of(&before, "b").expect("b runs"), Cmd::Crash).await;
    let after = children(&mut me, &sup).await;
    assert_eq!(pid_of(&after, "a"), pid_of(&before, "a"), "a is before b");
    for id in ["b", "c"] {
        let new = pid_of(&after, id).expect("runs after");
        assert_ne!(
            pid_of(&before, id),
            Some(new.clone()),
            "{id} was not restarted"
        );
        assert!(node.is_alive(&new));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_types_decide_which_exits_are_restarted() {
    let node = node();
    let mut me = node.attach();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(10, Duration::from_secs(60))
        .child(Worker::new("perm").spec())
        .child(Worker::new("trans").spec().restart(Restart::Transient))
        .child(
            Worker::new("trans_crash")
                .spec()
                .restart(Restart::Transient),
        )
        .child(Worker::new("temp").spec().restart(Restart::Temporary));
    let sup = supervisor::start_link(&me, spec, None)
        .await
        .expect("started");
    let before = children(&mut me, &sup).await;
    let pid = |id| pid_of(&before, id).expect("running");
    make_exit(&mut me, &pid("perm"), Cmd::Quit).await;
    make_exit(&mut me, &pid("trans"), Cmd::Quit).await;
    make_exit(&mut me, &pid("trans_crash"), Cmd::Crash).await;
    make_exit(&mut me, &pid("temp"), Cmd::Crash).await;
    let after = children(&mut me, &sup).await;
    let new_perm = pid_of(&after, "perm").expect("permanent: restarted after normal exit");
    assert_ne!(new_perm, pid("perm"));
    assert!(
        after.contains(&("trans".to_string(), None)),
        "transient: kept, not restarted after a normal exit: {after:?}"
    );
    let new_tc = pid_of(&after, "trans_crash").expect("transient: restarted after a crash");
    assert_ne!(new_tc, pid("trans_crash"));
    assert!(
        !after.iter().any(|(id, _)| id == "temp"),
        "temporary: forgotten, never restarted: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceeding_the_intensity_escalates_to_the_parent_supervisor() {
    let node = node();
    let mut me = node.attach();
    let inner = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(1, Duration::from_secs(60))
        .child(Worker::new("w").spec());
    let outer = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(5, Duration::from_secs(60))
        .child(ChildSpec::supervisor("inner", Some("inner"), inner));
    let top = supervisor::start_link(&me, outer, None)
        .await
        .expect("started");
    let old_inner = node.whereis("inner").expect("inner registered");
    let inner_mref = me.monitor(&old_inner);

    // First crash: within the intensity, the inner supervisor restarts w.
    let w1 = pid_of(&children(&mut me, &old_inner).await, "w").expect("w runs");
    make_exit(&mut me, &w1, Cmd::Crash).await;
    let w2 = pid_of(&children(&mut me, &old_inner).await, "w").expect("w restarted");
    assert_ne!(w1, w2);

    // Second crash: 2 restarts > 1 allowed; inner gives up with `shutdown`.
    make_exit(&mut me, &w2, Cmd::Crash).await;
    assert_eq!(down_reason(&mut me, inner_mref).await, ExitReason::Shutdown);
    assert!(!node.is_alive(&w2));

    // The outer supervisor restarted it, with a fresh w.
    let new_inner = pid_of(&children(&mut me, &top).await, "inner").expect("inner restarted");
    assert_ne!(new_inner, old_inner);
    assert_eq!(node.whereis("inner"), Some(new_inner.clone()));
    let w3 = pid_of(&children(&mut me, &new_inner).await, "w").expect("w runs again");
    assert!(node.is_alive(&w3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_top_level_supervisor_that_gives_up_exits_with_shutdown() {
    let node = node();
    let mut me = node.attach();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(0, Duration::from_secs(60))
        .child(Worker::new("w").spec())
        .child(Worker::new("bystander").spec());
    let sup = supervisor::start(&node, spec, Some("top"))
        .await
        .expect("started");
    let mref = me.monitor(&sup);
    let kids = children(&mut me, &sup).await;
    let w = pid_of(&kids, "w").expect("w runs");
    let bystander = pid_of(&kids, "bystander").expect("runs");
    make_exit(&mut me, &w, Cmd::Crash).await;
    assert_eq!(down_reason(&mut me, mref).await, ExitReason::Shutdown);
    assert!(!node.is_alive(&bystander), "children are shut down first");
    assert_eq!(node.whereis("top"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_goes_in_reverse_start_order_and_kills_a_child_that_ignores_it() {
    let node = node();
    let parent = node.attach();
    let mut me = node.attach();
    let log: Log = Arc::default();
    let trapping = |id| Worker {
        id,
        log: log.clone(),
        trap: true,
        stubborn: false,
    };
    let stubborn = Worker {
        stubborn: true,
        ..trapping("stubborn")
    };
    let limit = Duration::from_millis(150);
    let echo_log = log.clone();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(trapping("first").spec())
        .child(stubborn.spec().shutdown(Shutdown::Timeout(limit)))
        .child(ChildSpec::gen_server("echo", Some("echo"), move || Echo {
            log: echo_log.clone(),
        }))
        .child(trapping("last").spec());
    let sup = supervisor::start_link(&parent, spec, None)
        .await
        .expect("started");
    let r: Result<String, _> = gen_server::call(&mut me, "echo", "hi".to_string(), GENEROUS).await;
    assert_eq!(r.as_deref(), Ok("hi"), "the gen_server child answers");
    let kids = children(&mut me, &sup).await;
    let stubborn_pid = pid_of(&kids, "stubborn").expect("runs");
    let stubborn_mref = me.monitor(&stubborn_pid);
    let sup_mref = me.monitor(&sup);

    // The parent ends (normally): the supervisor shuts everything down and follows.
    let started = Instant::now();
    drop(parent);
    assert_eq!(down_reason(&mut me, sup_mref).await, ExitReason::Normal);
    assert!(
        started.elapsed() >= limit,
        "the stubborn child got its timeout"
    );
    assert_eq!(
        down_reason(&mut me, stubborn_mref).await,
        ExitReason::Killed,
        "the stubborn child was killed"
    );
    let order = log.lock().expect("log lock").clone();
    assert_eq!(order, ["last", "echo:shutdown", "stubborn", "first"]);
    for (id, pid) in kids {
        let pid = pid.expect("all were running");
        assert!(!node.is_alive(&pid), "{id} survived its supervisor");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_counts_show_in_introspection() {
    let node = node();
    let mut me = node.attach();
    let sup = supervisor::start_link(&me, spec(Strategy::OneForOne, &[&Worker::new("w")]), None)
        .await
        .expect("started");
    let restarts_of = |pid: &Pid| {
        node.processes()
            .into_iter()
            .find(|p| p.pid == pid.to_string())
            .map(|p| p.restarts)
    };
    let w0 = pid_of(&children(&mut me, &sup).await, "w").expect("runs");
    assert_eq!(restarts_of(&w0), Some(0));
    make_exit(&mut me, &w0, Cmd::Crash).await;
    let w1 = pid_of(&children(&mut me, &sup).await, "w").expect("runs");
    assert_eq!(restarts_of(&w1), Some(1));
    make_exit(&mut me, &w1, Cmd::Quit).await;
    let w2 = pid_of(&children(&mut me, &sup).await, "w").expect("runs");
    assert_eq!(restarts_of(&w2), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_and_restart_child_on_request() {
    let node = node();
    let mut me = node.attach();
    let (a, b) = (Worker::new("a"), Worker::new("b"));
    let sup = supervisor::start_link(&me, spec(Strategy::OneForOne, &[&a, &b]), Some("sup"))
        .await
        .expect("started");
    let old_a = pid_of(&children(&mut me, "sup").await, "a").expect("runs");
    supervisor::terminate_child(&mut me, "sup", "a")
        .await
        .expect("terminated");
    assert!(!node.is_alive(&old_a));
    assert_eq!(pid_of(&children(&mut me, &sup).await, "a"), None);
    let new_a = supervisor::restart_child(&mut me, &sup, "a")
        .await
        .expect("restarted");
    assert!(node.is_alive(&new_a));
    assert_eq!(pid_of(&children(&mut me, &sup).await, "a"), Some(new_a));
    assert_eq!(
        supervisor::restart_child(&mut me, &sup, "b").await,
        Err(SupervisorError::Running("b".into()))
    );
    assert_eq!(
        supervisor::terminate_child(&mut me, &sup, "zzz").await,
        Err(SupervisorError::NotFound("zzz".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_fails_to_start_fails_the_supervisor_start() {
    let node = node();
    let me = node.attach();
    let early_pid: Arc<Mutex<Option<Pid>>> = Arc::default();
    let seen = early_pid.clone();
    // It ignores `shutdown`: only the supervisor's kill after the timeout ends it.
    let stubborn = Worker {
        trap: true,
        stubborn: true,
        ..Worker::new("early")
    };
    let limit = Duration::from_millis(100);
    let early = ChildSpec::new("early", move |sup| {
        let w = stubborn.clone();
        let pid = sup.spawn_link(move |p| w.run(p));
        *seen.lock().expect("lock") = Some(pid.clone());
        Ok(pid)
    })
    .shutdown(Shutdown::Timeout(limit));
    let bad = ChildSpec::new("bad", |_sup| Err(ExitReason::custom("no luck")));
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(early)
        .child(bad);
    let started = Instant::now();
    let r = supervisor::start_link(&me, spec, Some("doomed")).await;
    assert!(
        started.elapsed() >= limit,
        "the early child was not waited for"
    );
    assert_eq!(
        r,
        Err(StartError::ChildFailed {
            id: "bad".into(),
            reason: ExitReason::custom("no luck")
        })
    );
    let early_pid = early_pid
        .lock()
        .expect("lock")
        .clone()
        .expect("early started");
    assert!(
        !node.is_alive(&early_pid),
        "the started child is shut down before the start fails"
    );
    assert_eq!(node.whereis("doomed"), None, "the name is free at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_gen_server_child_is_callable_by_name_again() {
    let node = node();
    let mut me = node.attach();
    let log: Log = Arc::default();
    let spec = SupervisorSpec::new(Strategy::OneForOne).child(ChildSpec::gen_server(
        "echo",
        Some("echo"),
        move || Echo { log: log.clone() },
    ));
    let sup = supervisor::start_link(&me, spec, None)
        .await
        .expect("started");
    let old = node.whereis("echo").expect("registered");
    let mref = me.monitor(&old);
    me.exit(&old, ExitReason::Kill);
    assert_eq!(down_reason(&mut me, mref).await, ExitReason::Killed);
    // The supervisor has the exit signal already; a query waits for the restart.
    let new = pid_of(&children(&mut me, &sup).await, "echo").expect("restarted");
    assert_eq!(node.whereis("echo"), Some(new.clone()));
    assert_ne!(new, old);
    let r: Result<String, _> =
        gen_server::call(&mut me, "echo", "again".to_string(), GENEROUS).await;
    assert_eq!(r.as_deref(), Ok("again"));
}
