//! The gen_server behaviour: a long-lived process whose state is a value and whose work is
//! done by synchronous callbacks (`init`, `handle_call`, `handle_cast`, `handle_info`,
//! `terminate`), as in Erlang/OTP's `gen_server`.
//!
//! A call monitors the server, sends the request tagged with the monitor's reference and
//! waits selectively for the reply with that tag or for the monitor's `Down`, so a dead,
//! crashing or unreachable server gives an error, never a hang. A server that traps exits
//! and gets an exit signal from its parent (the process that started it with
//! [`start_link`]) runs `terminate` and exits with the same reason; a server that does not
//! trap exits dies with the signal. A panic in a callback runs `terminate` with the panic
//! as reason and ends the process (never the node).

use crate::clock::Instant;
use crate::message::{Envelope, Message};
use crate::node::{Node, NodeError};
use crate::pid::{Dest, Pid, Ref};
use crate::process::Process;
use crate::reason::{Down, Exit, ExitReason};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::oneshot;

/// A server's behaviour. Every callback runs inside the server's process, one at a time.
pub trait GenServer: Send + 'static {
    /// Requests that expect a reply.
    type Call: Message;
    /// Replies to calls.
    type Reply: Message;
    /// Requests that expect no reply.
    type Cast: Message;

    /// Runs in the new process before the starter gets its pid; an error (or a panic)
    /// makes the start fail with that reason.
    fn init(&mut self, _ctx: &mut Process) -> Result<(), ExitReason> {
        Ok(())
    }

    /// Answers a call: at once ([`CallResult::Reply`]), later with [`reply`]
    /// ([`CallResult::NoReply`]), or by stopping.
    fn handle_call(
        &mut self,
        req: Self::Call,
        from: ReplyTo<Self::Reply>,
        ctx: &mut Process,
    ) -> CallResult<Self::Reply>;

    /// Handles a cast.
    fn handle_cast(&mut self, _msg: Self::Cast, _ctx: &mut Process) -> Flow {
        Flow::Continue
    }

    /// Handles any other message: plain sends, timer messages, `Down`s, and `Exit`s from
    /// processes other than the parent when trapping exits.
    fn handle_info(&mut self, msg: Envelope, ctx: &mut Process) -> Flow {
        log::debug!("{}: unhandled message {msg:?}", ctx.pid());
        Flow::Continue
    }

    /// Runs when the server stops on its own, is stopped, panics in a callback, or (when
    /// trapping exits) gets an exit signal from its parent.
    fn terminate(&mut self, _reason: &ExitReason, _ctx: &mut Process) {}
}

/// What `handle_call` decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallResult<R> {
    /// Reply now and keep going.
    Reply(R),
    /// Keep going; somebody replies later with [`reply`] on the stored [`ReplyTo`].
    NoReply,
    /// Stop with the reason, after `terminate`, replying first when a reply is given.
    Stop(ExitReason, Option<R>),
}

/// What `handle_cast` and `handle_info` decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Run `terminate` and exit with the reason.
    Stop(ExitReason),
}

/// Where the reply to one call goes: the caller and the call's tag. Keep it to reply
/// later; it can be sent to another process, which may then reply in the server's place.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct ReplyTo<R> {
    pid: Pid,
    tag: Ref,
    #[serde(skip)]
    reply: PhantomData<fn() -> R>,
}

impl<R> Clone for ReplyTo<R> {
    fn clone(&self) -> Self {
        ReplyTo {
            pid: self.pid.clone(),
            tag: self.tag,
            reply: PhantomData,
        }
    }
}

impl<R> std::fmt::Debug for ReplyTo<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReplyTo({}, {:?})", self.pid, self.tag)
    }
}

impl<R> PartialEq for ReplyTo<R> {
    fn eq(&self, other: &Self) -> bool {
        self.pid == other.pid && self.tag == other.tag
    }
}

impl<R: Message> ReplyTo<R> {
    /// The calling process.
    pub fn pid(&self) -> &Pid {
        &self.pid
    }

    /// Sends the reply; see [`reply`].
    pub fn reply(&self, ctx: &Process, reply: R) {
        ctx.send(
            &self.pid,
            CallReply {
                tag: self.tag,
                reply,
            },
        );
    }
}

/// Replies to a call held back with [`CallResult::NoReply`] (`gen_server:reply/2`).
/// A reply to a caller that gave up (timed out) is dropped by that caller.
pub fn reply<R: Message>(ctx: &Process, to: &ReplyTo<R>, reply: R) {
    to.reply(ctx, reply)
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum CallError {
    #[error("the call timed out")]
    Timeout,
    #[error("no such process")]
    NoProc,
    #[error("the server's node cannot be reached")]
    NoConnection,
    #[error("the server exited: {0}")]
    Exited(ExitReason),
}

impl CallError {
    fn from_down(reason: ExitReason) -> Self {
        match reason {
            ExitReason::NoProc => CallError::NoProc,
            ExitReason::NoConnection => CallError::NoConnection,
            other => CallError::Exited(other),
        }
    }
}

/// Why a server (or a supervisor) did not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum StartError {
    #[error("name {name} is already registered")]
    AlreadyStarted { name: String, pid: Option<Pid> },
    #[error("init failed: {0}")]
    Failed(ExitReason),
    #[error("child {id} failed to start: {reason}")]
    ChildFailed { id: String, reason: ExitReason },
}

impl From<StartError> for ExitReason {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Failed(reason) => reason,
            other => ExitReason::Custom(other.to_string()),
        }
    }
}

/// How to start a server.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Register the server under this name (before `init` runs).
    pub name: Option<String>,
    /// Trap exits from the start (a server may also call `ctx.trap_exit(true)` in `init`).
    pub trap_exit: bool,
}

impl StartOptions {
    fn named(name: Option<&str>) -> Self {
        StartOptions {
            name: name.map(str::to_string),
            trap_exit: false,
        }
    }
}

// ---------------------------------------------------------------- wire messages

#[derive(Serialize, Deserialize)]
pub(crate) struct CallRequest<C, R> {
    pub(crate) from: ReplyTo<R>,
    pub(crate) req: C,
}

#[derive(Serialize, Deserialize)]
struct CallReply<R> {
    tag: Ref,
    reply: R,
}

#[derive(Serialize, Deserialize)]
struct CastRequest<M> {
    msg: M,
}

/// Asks a server (or supervisor) to terminate with `reason`.
#[derive(Serialize, Deserialize)]
pub(crate) struct StopRequest {
    pub(crate) reason: ExitReason,
}

// ---------------------------------------------------------------- starting

/// A start in progress: the process is already spawned; awaiting this gives its pid once
/// `init` has run, or why it failed. It owns nothing borrowed, so it may be awaited anywhere.
#[must_use = "the start result arrives by awaiting it"]
pub struct Starting {
    pid: Pid,
    ack: oneshot::Receiver<Result<(), StartError>>,
}

impl Starting {
    /// The new process's pid, known before `init` has finished.
    pub fn pid(&self) -> &Pid {
        &self.pid
    }
}

impl Future for Starting {
    type Output = Result<Pid, StartError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.ack).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(Ok(()))) => Poll::Ready(Ok(self.pid.clone())),
            Poll::Ready(Ok(Err(e))) => Poll::Ready(Err(e)),
            // The process ended before answering: it was killed before its init ran.
            Poll::Ready(Err(_)) => Poll::Ready(Err(StartError::Failed(ExitReason::Killed))),
        }
    }
}

/// The new process's side of a start: tells the starter how `init` went.
pub(crate) struct Ack {
    tx: Option<oneshot::Sender<Result<(), StartError>>>,
    parent: Option<Pid>,
    /// The name the process registered, freed at once if the start fails.
    name: Option<String>,
}

impl Ack {
    /// The process that started this one linked, if any.
    pub(crate) fn parent(&self) -> Option<&Pid> {
        self.parent.as_ref()
    }

    pub(crate) fn ok(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Ok(()));
        }
    }

    /// Reports the failure. The process first unlinks from its parent, so the starter
    /// gets the error rather than an exit signal, and frees its name, so that a retry
    /// (a supervisor's restart) does not find it taken.
    pub(crate) fn fail(&mut self, ctx: &Process, err: StartError) {
        if let Some(parent) = &self.parent {
            ctx.unlink(parent);
        }
        if let Some(name) = self.name.take()
            && ctx.node().whereis(&name).as_ref() == Some(ctx.pid())
        {
            ctx.node().unregister(&name);
        }
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Err(err));
        }
    }
}

/// Spawns a process (linked to `parent` when given) that registers `name` and then runs
/// `body`, which must call [`Ack::ok`] or [`Ack::fail`] once its init is done.
pub(crate) fn spawn_acked<F, Fut>(
    node: &Node,
    parent: Option<&Pid>,
    name: Option<String>,
    body: F,
) -> Starting
where
    F: FnOnce(Process, Ack) -> Fut + Send + 'static,
    Fut: Future<Output = ExitReason> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let parent_pid = parent.cloned();
    let pid = node.spawn_opts(parent, None, move |ctx: Process| async move {
        let mut ack = Ack {
            tx: Some(tx),
            parent: parent_pid,
            name: None,
        };
        if let Some(name) = name {
            match ctx.register(&name) {
                Ok(()) => ack.name = Some(name),
                Err(e) => {
                    let err = match e {
                        NodeError::AlreadyRegistered(_) => StartError::AlreadyStarted {
                            pid: ctx.node().whereis(&name),
                            name,
                        },
                        other => StartError::Failed(ExitReason::custom(other.to_string())),
                    };
                    ack.fail(&ctx, err);
                    return ExitReason::Normal;
                }
            }
        }
        body(ctx, ack).await
    });
    Starting { pid, ack: rx }
}

/// Starts an unlinked server on `node`, registered under `name` if given.
pub fn start<S: GenServer>(node: &Node, server: S, name: Option<&str>) -> Starting {
    start_with(node, server, StartOptions::named(name))
}

/// Starts a server linked to `parent` (its supervisor, usually), registered under `name`
/// if given.
pub fn start_link<S: GenServer>(parent: &Process, server: S, name: Option<&str>) -> Starting {
    start_link_with(parent, server, StartOptions::named(name))
}

/// [`start`] with options.
pub fn start_with<S: GenServer>(node: &Node, server: S, opts: StartOptions) -> Starting {
    let trap = opts.trap_exit;
    spawn_acked(node, None, opts.name, move |ctx, ack| {
        serve(server, ctx, ack, trap)
    })
}

/// [`start_link`] with options.
pub fn start_link_with<S: GenServer>(parent: &Process, server: S, opts: StartOptions) -> Starting {
    let trap = opts.trap_exit;
    spawn_acked(
        parent.node(),
        Some(parent.pid()),
        opts.name,
        move |ctx, ack| serve(server, ctx, ack, trap),
    )
}

// ---------------------------------------------------------------- the server loop

/// Runs `f`, turning a panic into an exit reason.
pub(crate) fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, ExitReason> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(|panic| ExitReason::from_panic(&*panic))
}

async fn serve<S: GenServer>(
    mut server: S,
    mut ctx: Process,
    mut ack: Ack,
    trap_exit: bool,
) -> ExitReason {
    if trap_exit {
        ctx.trap_exit(true);
    }
    match guarded(|| server.init(&mut ctx)) {
        Ok(Ok(())) => ack.ok(),
        Ok(Err(reason)) | Err(reason) => {
            ack.fail(&ctx, StartError::Failed(reason.clone()));
            return reason;
        }
    }
    let parent = ack.parent().cloned();
    loop {
        let env = ctx.recv().await;
        if let Some(reason) = dispatch(&mut server, &mut ctx, env, parent.as_ref()) {
            return reason;
        }
    }
}

/// Handles one message; `Some(reason)` when the server is to exit with it.
fn dispatch<S: GenServer>(
    server: &mut S,
    ctx: &mut Process,
    env: Envelope,
    parent: Option<&Pid>,
) -> Option<ExitReason> {
    let env = match env.downcast::<CallRequest<S::Call, S::Reply>>() {
        Ok(CallRequest { from, req }) => {
            return match guarded(|| server.handle_call(req, from.clone(), ctx)) {
                Ok(CallResult::Reply(r)) => {
                    from.reply(ctx, r);
                    None
                }
                Ok(CallResult::NoReply) => None,
                Ok(CallResult::Stop(reason, r)) => {
                    let reason = terminate(server, ctx, reason);
                    if let Some(r) = r {
                        from.reply(ctx, r);
                    }
                    Some(reason)
                }
                Err(panic) => Some(terminate(server, ctx, panic)),
            };
        }
        Err(env) => env,
    };
    let env = match env.downcast::<CastRequest<S::Cast>>() {
        Ok(CastRequest { msg }) => {
            let flow = guarded(|| server.handle_cast(msg, ctx));
            return after_flow(server, ctx, flow);
        }
        Err(env) => env,
    };
    if let Some(exit) = env.peek_local::<Exit>()
        && Some(&exit.from) == parent
    {
        let reason = exit.reason.clone();
        return Some(terminate(server, ctx, reason));
    }
    let env = match env.downcast::<StopRequest>() {
        Ok(StopRequest { reason }) => return Some(terminate(server, ctx, reason)),
        Err(env) => env,
    };
    let flow = guarded(|| server.handle_info(env, ctx));
    after_flow(server, ctx, flow)
}

fn after_flow<S: GenServer>(
    server: &mut S,
    ctx: &mut Process,
    flow: Result<Flow, ExitReason>,
) -> Option<ExitReason> {
    match flow {
        Ok(Flow::Continue) => None,
        Ok(Flow::Stop(reason)) | Err(reason) => Some(terminate(server, ctx, reason)),
    }
}

/// Runs `terminate`; the process then exits with `reason` (or with the panic of
/// `terminate` itself, as OTP exits with a crash in terminate).
fn terminate<S: GenServer>(server: &mut S, ctx: &mut Process, reason: ExitReason) -> ExitReason {
    match guarded(|| server.terminate(&reason, ctx)) {
        Ok(()) => reason,
        Err(panic) => panic,
    }
}

// ---------------------------------------------------------------- calling

enum Answer<R> {
    Reply(R),
    Down(ExitReason),
    /// A reply to an earlier call of this caller that timed out: dropped.
    Stale,
}

fn classify<R: Message>(env: Envelope, mref: Ref) -> Result<Answer<R>, Envelope> {
    if let Some(down) = env.peek_local::<Down>() {
        if down.mref != mref {
            return Err(env);
        }
        return env.downcast::<Down>().map(|d| Answer::Down(d.reason));
    }
    match env.downcast::<CallReply<R>>() {
        Ok(rep) if rep.tag == mref => Ok(Answer::Reply(rep.reply)),
        Ok(_) => Ok(Answer::Stale),
        Err(env) => Err(env),
    }
}

/// Resolves a local name to a pid (a name that is not registered is `NoProc` at once);
/// other destinations are kept as they are.
fn resolve(caller: &Process, server: Dest) -> Result<Dest, CallError> {
    match server {
        Dest::Name(name) => caller.node().whereis(&name),
        Dest::Remote(name, node) if node == *caller.node().name() => caller.node().whereis(&name),
        other => return Ok(other),
    }
    .map(Dest::Pid)
    .ok_or(CallError::NoProc)
}

fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

fn remaining(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

/// Calls a server and waits up to `timeout` (`Duration::MAX` waits for ever) for its
/// reply (`gen_server:call/3`). `server` is a pid, a local name or `(name, node)`.
/// Works from any process, attached ones included (`node.attach()`).
///
/// `C` and `R` must be the server's `Call` and `Reply` types: a request of another type
/// reaches the server's `handle_info` and the call times out.
pub async fn call<C: Message, R: Message>(
    caller: &mut Process,
    server: impl Into<Dest>,
    req: C,
    timeout: Duration,
) -> Result<R, CallError> {
    let dest = resolve(caller, server.into())?;
    let mref = caller.monitor(dest.clone());
    let from: ReplyTo<R> = ReplyTo {
        pid: caller.pid().clone(),
        tag: mref,
        reply: PhantomData,
    };
    caller.send(dest, CallRequest { from, req });
    let deadline = deadline_after(timeout);
    loop {
        match caller
            .receive(remaining(deadline), |env| classify::<R>(env, mref))
            .await
        {
            Some(Answer::Reply(r)) => {
                caller.demonitor(mref);
                return Ok(r);
            }
            Some(Answer::Down(reason)) => return Err(CallError::from_down(reason)),
            Some(Answer::Stale) => continue,
            None => {
                caller.demonitor(mref);
                return Err(CallError::Timeout);
            }
        }
    }
}

/// [`call`] for code that is not a process: a short-lived attached process makes the call.
pub async fn call_from_node<C: Message, R: Message>(
    node: &Node,
    server: impl Into<Dest>,
    req: C,
    timeout: Duration,
) -> Result<R, CallError> {
    let mut caller = node.attach();
    call(&mut caller, server, req, timeout).await
}

/// Sends a cast (`gen_server:cast/2`): no reply, no error, even if the server is gone.
pub fn cast<M: Message>(from: &Process, server: impl Into<Dest>, msg: M) {
    from.send(server, CastRequest { msg });
}

/// [`cast`] from code that is not a process (the message has no sender).
pub fn cast_from_node<M: Message>(node: &Node, server: impl Into<Dest>, msg: M) {
    node.send(None, server, CastRequest { msg });
}

/// Stops a server (or a supervisor) with `reason` and waits until it has exited
/// (`gen_server:stop/3`): it runs `terminate` (a supervisor shuts its children down).
/// `Ok` when it exited with `reason`; `Exited` when it ended with another reason.
pub async fn stop(
    caller: &mut Process,
    server: impl Into<Dest>,
    reason: ExitReason,
    timeout: Duration,
) -> Result<(), CallError> {
    let dest = resolve(caller, server.into())?;
    let mref = caller.monitor(dest.clone());
    caller.send(
        dest,
        StopRequest {
            reason: reason.clone(),
        },
    );
    match caller
        .receive_match::<Down>(remaining(deadline_after(timeout)), |d| d.mref == mref)
        .await
    {
        Some(down) if down.reason == reason => Ok(()),
        Some(down) => Err(CallError::from_down(down.reason)),
        None => {
            caller.demonitor(mref);
            Err(CallError::Timeout)
        }
    }
}
