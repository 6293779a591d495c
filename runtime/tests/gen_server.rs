//! gen_server: calls (immediate and deferred replies), casts, infos, terminate, starts
//! that fail, and every way a call can fail (dead server, crash during the call, timeout,
//! lost node).

use runtime::gen_server::{
    self, CallError, CallResult, Flow, GenServer, ReplyTo, StartError, StartOptions,
};
use runtime::transport::memory::Network;
use runtime::{Down, Envelope, ExitReason, Node, NodeRole, Pid, Process, Ref};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::time::Instant;

const GENEROUS: Duration = Duration::from_secs(10);

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Req {
    Get,
    Add(i64),
    /// Answered later, on `Msg::Release`.
    Defer,
    /// Stops without replying.
    Crash,
    Panic,
    /// Stops, replying `Rep::Stopped`.
    StopWith(String),
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Rep {
    Value(i64),
    Stopped,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Msg {
    Add(i64),
    /// Replies to every deferred call with this value.
    Release(i64),
    Stop,
    Panic,
}

/// A plain message (not a call or cast): goes to `handle_info`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Tick(i64);

/// What the server tells its observer.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Event {
    Deferred,
    Info(i64),
    Terminated(ExitReason),
}

#[derive(Default)]
struct Counter {
    value: i64,
    observer: Option<Pid>,
    held: Vec<ReplyTo<Rep>>,
    trap_exit: bool,
    init_fails: Option<ExitReason>,
    init_panics: bool,
}

impl Counter {
    fn observed_by(p: &Process) -> Self {
        Counter {
            observer: Some(p.pid().clone()),
            ..Default::default()
        }
    }

    fn tell(&self, ctx: &Process, e: Event) {
        if let Some(o) = &self.observer {
            ctx.send(o, e);
        }
    }
}

impl GenServer for Counter {
    type Call = Req;
    type Reply = Rep;
    type Cast = Msg;

    fn init(&mut self, ctx: &mut Process) -> Result<(), ExitReason> {
        if self.init_panics {
            panic!("init exploded");
        }
        if let Some(r) = self.init_fails.clone() {
            return Err(r);
        }
        if self.trap_exit {
            ctx.trap_exit(true);
        }
        Ok(())
    }

    fn handle_call(&mut self, req: Req, from: ReplyTo<Rep>, ctx: &mut Process) -> CallResult<Rep> {
        match req {
            Req::Get => CallResult::Reply(Rep::Value(self.value)),
            Req::Add(n) => {
                self.value += n;
                CallResult::Reply(Rep::Value(self.value))
            }
            Req::Defer => {
                self.held.push(from);
                self.tell(ctx, Event::Deferred);
                CallResult::NoReply
            }
            Req::Crash => CallResult::Stop(ExitReason::custom("crashed"), None),
            Req::Panic => panic!("boom in handle_call"),
            Req::StopWith(r) => CallResult::Stop(ExitReason::custom(r), Some(Rep::Stopped)),
        }
    }

    fn handle_cast(&mut self, msg: Msg, ctx: &mut Process) -> Flow {
        match msg {
            Msg::Add(n) => self.value += n,
            Msg::Release(n) => {
                for from in self.held.drain(..) {
                    gen_server::reply(ctx, &from, Rep::Value(n));
                }
            }
            Msg::Stop => return Flow::Stop(ExitReason::Normal),
            Msg::Panic => panic!("boom in handle_cast"),
        }
        Flow::Continue
    }

    fn handle_info(&mut self, msg: Envelope, ctx: &mut Process) -> Flow {
        if let Ok(Tick(n)) = msg.downcast::<Tick>() {
            self.value += n;
            self.tell(ctx, Event::Info(n));
        }
        Flow::Continue
    }

    fn terminate(&mut self, reason: &ExitReason, ctx: &mut Process) {
        self.tell(ctx, Event::Terminated(reason.clone()));
    }
}

fn node() -> Node {
    Network::new().start_node("a@test", NodeRole::Server)
}

async fn get(caller: &mut Process, server: &Pid) -> Result<Rep, CallError> {
    gen_server::call(caller, server, Req::Get, GENEROUS).await
}

async fn next_event(p: &mut Process) -> Event {
    p.receive_type::<Event>(Some(GENEROUS))
        .await
        .expect("an event from the server within the deadline")
}

async fn down_reason(p: &mut Process, mref: Ref) -> ExitReason {
    p.receive_match::<Down>(Some(GENEROUS), |d| d.mref == mref)
        .await
        .expect("a Down within the deadline")
        .reason
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_and_reply_by_name_and_by_pid() {
    let node = node();
    let mut me = node.attach();
    let pid = gen_server::start(&node, Counter::default(), Some("counter"))
        .await
        .expect("started");
    assert_eq!(node.whereis("counter"), Some(pid.clone()));
    let r: Rep = gen_server::call(&mut me, "counter", Req::Add(2), GENEROUS)
        .await
        .expect("call by name");
    assert_eq!(r, Rep::Value(2));
    assert_eq!(get(&mut me, &pid).await, Ok(Rep::Value(2)));
    let r: Result<Rep, _> = gen_server::call_from_node(&node, &pid, Req::Add(3), GENEROUS).await;
    assert_eq!(r, Ok(Rep::Value(5)));
    assert_eq!(me.mailbox_len(), 0, "no reply or Down left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_reply_then_a_later_reply_reaches_the_caller() {
    let node = node();
    let mut observer = node.attach();
    let mut caller = node.attach();
    let pid = gen_server::start(&node, Counter::observed_by(&observer), None)
        .await
        .expect("started");
    let call = gen_server::call::<Req, Rep>(&mut caller, &pid, Req::Defer, GENEROUS);
    let release = async {
        assert_eq!(next_event(&mut observer).await, Event::Deferred);
        gen_server::cast_from_node(&node, &pid, Msg::Release(42));
    };
    let (answer, ()) = tokio::join!(call, release);
    assert_eq!(answer, Ok(Rep::Value(42)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn casts_and_infos_are_handled_in_order() {
    let node = node();
    let mut me = node.attach();
    let pid = gen_server::start(&node, Counter::observed_by(&me), None)
        .await
        .expect("started");
    gen_server::cast(&me, &pid, Msg::Add(5));
    me.send(&pid, Tick(3));
    // The call comes after the cast and the info from the same sender: it sees both.
    assert_eq!(get(&mut me, &pid).await, Ok(Rep::Value(8)));
    assert_eq!(next_event(&mut me).await, Event::Info(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_runs_when_the_server_stops_itself() {
    let node = node();
    let mut me = node.attach();
    let pid = gen_server::start(&node, Counter::observed_by(&me), None)
        .await
        .expect("started");
    let mref = me.monitor(&pid);
    gen_server::cast(&me, &pid, Msg::Stop);
    assert_eq!(
        next_event(&mut me).await,
        Event::Terminated(ExitReason::Normal)
    );
    assert_eq!(down_reason(&mut me, mref).await, ExitReason::Normal);

    let pid = gen_server::start(&node, Counter::observed_by(&me), None)
        .await
        .expect("started");
    let mref = me.monitor(&pid);
    let r: Result<Rep, _> =
        gen_server::call(&mut me, &pid, Req::StopWith("bye".into()), GENEROUS).await;
    assert_eq!(r, Ok(Rep::Stopped), "the stop's reply reaches the caller");
    assert_eq!(
        next_event(&mut me).await,
        Event::Terminated(ExitReason::custom("bye"))
    );
    assert_eq!(down_reason(&mut me, mref).await, ExitReason::custom("bye"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_runs_terminate_and_waits_for_the_exit() {
    let node = node();
    let mut me = node.attach();
    let pid = gen_server::start(&node, Counter::observed_by(&me), None)
        .await
        .expect("started");
    gen_server::stop(&mut me, &pid, ExitReason::Shutdown, GENEROUS)
        .await
        .expect("stopped");
    assert!(!node.is_alive(&pid));
    assert_eq!(
        next_event(&mut me).await,
        Event::Terminated(ExitReason::Shutdown)
    );
    assert_eq!(
        gen_server::stop(&mut me, &pid, ExitReason::Shutdown, GENEROUS).await,
        Err(CallError::NoProc)
    );
}

/// Spawns a parent that starts a `Counter` linked to it, hands its pid to `me`, and exits
/// with `parent_gone` when told to (by any message).
async fn server_under_a_parent(node: &Node, me: &mut Process, trap_exit: bool) -> (Pid, Pid) {
    let observer = me.pid().clone();
    let parent = node.spawn(move |mut p: Process| async move {
        let server = Counter {
            observer: Some(observer.clone()),
            trap_exit,
            ..Default::default()
        };
        let pid = gen_server::start_link(&p, server, None)
            .await
            .expect("started");
        p.send(&observer, pid);
        let _ = p.recv().await;
        ExitReason::custom("parent_gone")
    });
    let server = me
        .receive_type::<Pid>(Some(GENEROUS))
        .await
        .expect("the parent reports the server");
    (parent, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_server_runs_terminate_when_its_parent_exits() {
    let node = node();
    let mut me = node.attach();
    let (parent, server) = server_under_a_parent(&node, &mut me, true).await;
    let mref = me.monitor(&server);
    me.send(&parent, Tick(0));
    let gone = ExitReason::custom("parent_gone");
    assert_eq!(next_event(&mut me).await, Event::Terminated(gone.clone()));
    assert_eq!(down_reason(&mut me, mref).await, gone);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_does_not_trap_dies_with_its_parents_signal() {
    let node = node();
    let mut me = node.attach();
    let (parent, server) = server_under_a_parent(&node, &mut me, false).await;
    let mref = me.monitor(&server);
    me.send(&parent, Tick(0));
    assert_eq!(
        down_reason(&mut me, mref).await,
        ExitReason::custom("parent_gone")
    );
    // terminate would have told us before the server ended; nothing came.
    let stray = me.receive_type::<Event>(Some(Duration::ZERO)).await;
    assert_eq!(stray, None, "terminate ran without trapping exits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap_exit_can_be_asked_at_start() {
    let node = node();
    let opts = StartOptions {
        name: Some("trapper".into()),
        trap_exit: true,
    };
    let pid = gen_server::start_with(&node, Counter::default(), opts)
        .await
        .expect("started");
    let info = node
        .processes()
        .into_iter()
        .find(|p| p.pid == pid.to_string())
        .expect("listed");
    assert!(info.trap_exit);
    assert_eq!(info.name.as_deref(), Some("trapper"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_to_a_dead_pid_or_unknown_name_fails_fast_with_noproc() {
    let node = node();
    let mut me = node.attach();
    let (dead, mref) = me.spawn_monitor(|_p: Process| async {});
    down_reason(&mut me, mref).await;
    let started = Instant::now();
    assert_eq!(get(&mut me, &dead).await, Err(CallError::NoProc));
    let r: Result<Rep, _> = gen_server::call(&mut me, "nobody", Req::Get, GENEROUS).await;
    assert_eq!(r, Err(CallError::NoProc));
    assert!(
        started.elapsed() < GENEROUS / 2,
        "noproc took {:?}",
        started.elapsed()
    );
    assert_eq!(me.mailbox_len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ends_during_the_call_gives_exited_with_its_reason() {
    let node = node();
    let mut me = node.attach();
    let pid = gen_server::start(&node, Counter::default(), None)
        .await
        .expect("started");
    let r: Result<Rep, _> = gen_server::call(&mut me, &pid, Req::Crash, GENEROUS).await;
    assert_eq!(r, Err(CallError::Exited(ExitReason::custom("crashed"))));

    let pid = gen_server::start(&node, Counter::default(), None)
        .await
        .expect("started");
    let r: Result<Rep, _> = gen_server::call(&mut me, &pid, Req::Panic, GENEROUS).await;
    match r {
        Err(CallError::Exited(ExitReason::Panic(m))) => assert!(m.contains("boom"), "{m}"),
        other => panic!("expected a panic exit, got {other:?}"),
    }
    assert_eq!(me.mailbox_len(), 0, "the Down was taken by the call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_times_out_and_a_late_reply_is_dropped() {
    let node = node();
    let mut me = node.attach();
    let pid = gen_server::start(&node, Counter::default(), None)
        .await
        .expect("started");
    let limit = Duration::from_millis(100);
    let started = Instant::now();
    let r: Result<Rep, _> = gen_server::call(&mut me, &pid, Req::Defer, limit).await;
    assert_eq!(r, Err(CallError::Timeout));
    assert!(started.elapsed() >= limit);
    assert!(node.is_alive(&pid), "a timeout does not hurt the server");
    // The server now answers the abandoned call; the next call must not take that answer.
    gen_server::cast(&me, &pid, Msg::Release(-1));
    gen_server::cast(&me, &pid, Msg::Add(7));
    assert_eq!(get(&mut me, &pid).await, Ok(Rep::Value(7)));
    assert_eq!(me.mailbox_len(), 0, "the late reply was dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_callback_ends_that_server_only() {
    let node = node();
    let mut me = node.attach();
    let doomed = gen_server::start(&node, Counter::observed_by(&me), None)
        .await
        .expect("started");
    let other = gen_server::start(&node, Counter::default(), None)
        .await
        .expect("started");
    let mref = me.monitor(&doomed);
    gen_server::cast(&me, &doomed, Msg::Panic);
    let reason = down_reason(&mut me, mref).await;
    assert!(
        matches!(&reason, ExitReason::Panic(m) if m.contains("boom in handle_cast")),
        "{reason:?}"
    );
    assert_eq!(next_event(&mut me).await, Event::Terminated(reason));
    let r: Result<Rep, _> = gen_server::call(&mut me, &other, Req::Add(1), GENEROUS).await;
    assert_eq!(r, Ok(Rep::Value(1)), "the other server keeps working");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_failure_is_an_error_to_the_starter_which_survives() {
    let node = node();
    let mut me = node.attach();
    let report = me.pid().clone();
    let starter = node.spawn(move |mut p: Process| async move {
        let failing = Counter {
            init_fails: Some(ExitReason::custom("nope")),
            ..Default::default()
        };
        let r1 = gen_server::start_link(&p, failing, None).await;
        let panicking = Counter {
            init_panics: true,
            ..Default::default()
        };
        let r2 = gen_server::start_link(&p, panicking, None).await;
        p.send(&report, (r1, r2));
        let _ = p.recv().await;
    });
    let (r1, r2) = me
        .receive_type::<(Result<Pid, StartError>, Result<Pid, StartError>)>(Some(GENEROUS))
        .await
        .expect("the starter reports");
    assert_eq!(r1, Err(StartError::Failed(ExitReason::custom("nope"))));
    match r2 {
        Err(StartError::Failed(ExitReason::Panic(m))) => assert!(m.contains("init exploded")),
        other => panic!("expected a panic in init, got {other:?}"),
    }
    assert!(
        node.is_alive(&starter),
        "a failed start must not kill the starter"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_name_fails_the_start() {
    let node = node();
    let first = gen_server::start(&node, Counter::default(), Some("only"))
        .await
        .expect("started");
    let second = gen_server::start(&node, Counter::default(), Some("only")).await;
    assert_eq!(
        second,
        Err(StartError::AlreadyStarted {
            name: "only".into(),
            pid: Some(first.clone())
        })
    );
    assert_eq!(node.whereis("only"), Some(first));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_reach_remote_servers_and_a_lost_node_gives_noconnection() {
    let net = Network::new();
    let a = net.start_node("a@test", NodeRole::Server);
    let b = net.start_node("b@test", NodeRole::Server);
    let server = gen_server::start(&b, Counter::default(), Some("counter"))
        .await
        .expect("started");
    let mut me = a.attach();
    let r: Result<Rep, _> =
        gen_server::call(&mut me, ("counter", b.name()), Req::Add(4), GENEROUS).await;
    assert_eq!(r, Ok(Rep::Value(4)));
    assert_eq!(get(&mut me, &server).await, Ok(Rep::Value(4)));
    b.stop();
    let started = Instant::now();
    assert_eq!(get(&mut me, &server).await, Err(CallError::NoConnection));
    assert!(started.elapsed() < GENEROUS / 2);
}
