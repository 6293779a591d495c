//! Supervisors, as Erlang/OTP's `supervisor`: a process that starts its children in order,
//! traps exits, restarts children by strategy (one_for_one, one_for_all, rest_for_one) and
//! restart type (permanent, transient, temporary), gives up when restarts exceed the
//! intensity (exiting `shutdown` so its own supervisor decides), and shuts its children
//! down in reverse start order.
//!
//! A child's start function gets the supervisor's process handle and returns the pid of a
//! process linked to it (`sup.spawn_link(...)`, or [`gen_server::start_link`]`(sup, ...)`
//! through [`ChildSpec::gen_server`]). Starting may be asynchronous, since a gen_server's
//! start returns only once its `init` has run.

use crate::clock::Instant;
use crate::gen_server::{
    self, Ack, CallError, CallRequest, GenServer, ReplyTo, StartError, Starting, StopRequest,
};
use crate::node::Node;
use crate::pid::{Dest, Pid, Ref};
use crate::process::Process;
use crate::reason::{Down, Exit, ExitReason};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::future::Future;
use std::ops::Range;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

/// Which children are restarted when one exits and is to be restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Only that child.
    OneForOne,
    /// All children: the others are shut down (reverse order), then all started again.
    OneForAll,
    /// That child and the ones started after it.
    RestForOne,
}

/// When a child is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Always.
    Permanent,
    /// Only after an abnormal exit (not `normal` nor `shutdown`).
    Transient,
    /// Never; the child is forgotten once it exits.
    Temporary,
}

/// How a child is shut down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// Killed at once (`kill`, which cannot be trapped).
    BrutalKill,
    /// Sent `shutdown`; killed if still alive after the timeout.
    Timeout(Duration),
    /// Sent `shutdown` and waited for as long as it takes (for supervisors).
    Infinity,
}

/// What a child is; supervisors default to [`Shutdown::Infinity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildKind {
    Worker,
    Supervisor,
}

/// A child's start function: called with the supervisor's handle, it returns (a future
/// of) the pid of a process linked to the supervisor.
pub type StartFn = dyn Fn(&Process) -> BoxFuture<'static, Result<Pid, ExitReason>> + Send + Sync;

/// How to start and treat one child.
#[derive(Clone)]
pub struct ChildSpec {
    /// Unique among the supervisor's children.
    pub id: String,
    pub start: Arc<StartFn>,
    pub restart: Restart,
    pub shutdown: Shutdown,
    pub kind: ChildKind,
}

impl std::fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// OTP's default shutdown time for workers.
const WORKER_SHUTDOWN: Duration = Duration::from_secs(5);

impl ChildSpec {
    /// A permanent worker (shutdown timeout 5 s) started by a synchronous function, such
    /// as `|sup| Ok(sup.spawn_link(body))`.
    pub fn new(
        id: impl Into<String>,
        start: impl Fn(&Process) -> Result<Pid, ExitReason> + Send + Sync + 'static,
    ) -> Self {
        Self::from_start_fn(
            id,
            Arc::new(move |sup: &Process| {
                let result = start(sup);
                std::future::ready(result).boxed()
            }),
        )
    }

    /// A permanent worker started by a function that returns a future (which must not
    /// borrow the supervisor's handle).
    pub fn new_async<F, Fut>(id: impl Into<String>, start: F) -> Self
    where
        F: Fn(&Process) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Pid, ExitReason>> + Send + 'static,
    {
        Self::from_start_fn(id, Arc::new(move |sup: &Process| start(sup).boxed()))
    }

    /// A permanent worker that is a gen_server made by `make` (called at every start),
    /// registered under `name` if given.
    pub fn gen_server<S: GenServer>(
        id: impl Into<String>,
        name: Option<&str>,
        make: impl Fn() -> S + Send + Sync + 'static,
    ) -> Self {
        let name = name.map(str::to_string);
        Self::new_async(id, move |sup| {
            gen_server::start_link(sup, make(), name.as_deref()).map(|r| r.map_err(Into::into))
        })
    }

    /// A permanent child that is itself a supervisor (shutdown: infinity).
    pub fn supervisor(id: impl Into<String>, name: Option<&str>, spec: SupervisorSpec) -> Self {
        let name = name.map(str::to_string);
        Self::new_async(id, move |sup| {
            start_link(sup, spec.clone(), name.as_deref()).map(|r| r.map_err(Into::into))
        })
        .kind(ChildKind::Supervisor)
    }

    fn from_start_fn(id: impl Into<String>, start: Arc<StartFn>) -> Self {
        ChildSpec {
            id: id.into(),
            start,
            restart: Restart::Permanent,
            shutdown: Shutdown::Timeout(WORKER_SHUTDOWN),
            kind: ChildKind::Worker,
        }
    }

    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Sets the kind; making it a supervisor also sets shutdown to infinity.
    pub fn kind(mut self, kind: ChildKind) -> Self {
        self.kind = kind;
        if kind == ChildKind::Supervisor {
            self.shutdown = Shutdown::Infinity;
        }
        self
    }
}

/// A supervisor: its strategy, restart intensity, and children in start order.
#[derive(Clone, Debug)]
pub struct SupervisorSpec {
    pub strategy: Strategy,
    /// More than `intensity` restarts within `period` make the supervisor give up.
    pub intensity: u32,
    pub period: Duration,
    pub children: Vec<ChildSpec>,
}

impl SupervisorSpec {
    /// No children yet; OTP's default intensity: 1 restart in 5 seconds.
    pub fn new(strategy: Strategy) -> Self {
        SupervisorSpec {
            strategy,
            intensity: 1,
            period: Duration::from_secs(5),
            children: Vec::new(),
        }
    }

    pub fn intensity(mut self, intensity: u32, period: Duration) -> Self {
        self.intensity = intensity;
        self.period = period;
        self
    }

    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }
}

/// Errors of the query API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum SupervisorError {
    #[error("no child with id {0}")]
    NotFound(String),
    #[error("child {0} is running")]
    Running(String),
    #[error("child {id} failed to start: {reason}")]
    StartFailed { id: String, reason: ExitReason },
    #[error(transparent)]
    Call(#[from] CallError),
}

/// Starts a supervisor linked to `parent`, registered under `name` if given. Resolves
/// once every child has started; if one fails, those started are shut down and the start
/// fails with [`StartError::ChildFailed`].
pub fn start_link(parent: &Process, spec: SupervisorSpec, name: Option<&str>) -> Starting {
    gen_server::spawn_acked(
        parent.node(),
        Some(parent.pid()),
        name.map(str::to_string),
        move |ctx, ack| supervise(ctx, ack, spec),
    )
}

/// Starts an unlinked (top-level) supervisor on `node`. Exit signals from non-children are
/// ignored, as in OTP; stop it with [`gen_server::stop`] (or kill it).
pub fn start(node: &Node, spec: SupervisorSpec, name: Option<&str>) -> Starting {
    gen_server::spawn_acked(node, None, name.map(str::to_string), move |ctx, ack| {
        supervise(ctx, ack, spec)
    })
}

/// The supervisor's children in start order, with their pids when running
/// (`supervisor:which_children/1`).
pub async fn which_children(
    caller: &mut Process,
    sup: impl Into<Dest>,
) -> Result<Vec<(String, Option<Pid>)>, SupervisorError> {
    match request(caller, sup, Request::WhichChildren).await? {
        Answer::Children(children) => Ok(children),
        other => Err(other.unexpected()),
    }
}

/// Shuts a child down (as its spec says); it stays in the spec, not running, unless it
/// is temporary (`supervisor:terminate_child/2`).
pub async fn terminate_child(
    caller: &mut Process,
    sup: impl Into<Dest>,
    id: &str,
) -> Result<(), SupervisorError> {
    match request(caller, sup, Request::TerminateChild(id.to_string())).await? {
        Answer::Done => Ok(()),
        other => Err(other.unexpected()),
    }
}

/// Starts a child that is not running (`supervisor:restart_child/2`).
pub async fn restart_child(
    caller: &mut Process,
    sup: impl Into<Dest>,
    id: &str,
) -> Result<Pid, SupervisorError> {
    match request(caller, sup, Request::RestartChild(id.to_string())).await? {
        Answer::Started(pid) => Ok(pid),
        other => Err(other.unexpected()),
    }
}

// ---------------------------------------------------------------- the query protocol

#[derive(Serialize, Deserialize, Debug)]
enum Request {
    WhichChildren,
    TerminateChild(String),
    RestartChild(String),
}

#[derive(Serialize, Deserialize, Debug)]
enum Answer {
    Children(Vec<(String, Option<Pid>)>),
    Done,
    Started(Pid),
    Failed(SupervisorError),
}

impl Answer {
    fn unexpected(self) -> SupervisorError {
        match self {
            Answer::Failed(e) => e,
            // Cannot happen: each request has its own answer.
            other => SupervisorError::Call(CallError::Exited(ExitReason::custom(format!(
                "unexpected supervisor answer {other:?}"
            )))),
        }
    }
}

async fn request(
    caller: &mut Process,
    sup: impl Into<Dest>,
    req: Request,
) -> Result<Answer, SupervisorError> {
    // OTP's supervisor calls wait for ever; a dead supervisor still answers through the
    // call's monitor.
    Ok(gen_server::call::<Request, Answer>(caller, sup, req, Duration::MAX).await?)
}

// ---------------------------------------------------------------- the supervisor process

struct Child {
    spec: ChildSpec,
    pid: Option<Pid>,
    /// How many times this child id was restarted.
    restarts: u32,
}

struct Supervisor {
    strategy: Strategy,
    intensity: u32,
    period: Duration,
    children: Vec<Child>,
    /// When the recent restarts happened, oldest first.
    restart_log: VecDeque<Instant>,
    parent: Option<Pid>,
}

/// The intensity was exceeded: the supervisor has shut its children down and exits.
struct GaveUp;

async fn supervise(mut ctx: Process, mut ack: Ack, spec: SupervisorSpec) -> ExitReason {
    ctx.trap_exit(true);
    let mut sup = Supervisor {
        strategy: spec.strategy,
        intensity: spec.intensity,
        period: spec.period,
        children: spec
            .children
            .into_iter()
            .map(|spec| Child {
                spec,
                pid: None,
                restarts: 0,
            })
            .collect(),
        restart_log: VecDeque::new(),
        parent: ack.parent().cloned(),
    };
    let all = 0..sup.children.len();
    if let Err((index, reason)) = sup.start_range(&mut ctx, all.clone(), false).await {
        let id = sup.children[index].spec.id.clone();
        log::error!(
            "supervisor {}: child {id} failed to start: {reason}",
            ctx.pid()
        );
        sup.terminate_range(&mut ctx, all).await;
        ack.fail(&ctx, StartError::ChildFailed { id, reason });
        return ExitReason::Shutdown;
    }
    ack.ok();
    sup.run(&mut ctx).await
}

impl Supervisor {
    async fn run(&mut self, ctx: &mut Process) -> ExitReason {
        loop {
            let env = ctx.recv().await;
            let env = match env.downcast::<Exit>() {
                Ok(Exit { from, reason }) => {
                    if Some(&from) == self.parent.as_ref() {
                        self.terminate_all(ctx).await;
                        return reason;
                    }
                    match self
                        .children
                        .iter()
                        .position(|c| c.pid.as_ref() == Some(&from))
                    {
                        Some(index) => {
                            if self.child_exited(ctx, index, reason).await.is_err() {
                                return ExitReason::Shutdown;
                            }
                        }
                        None => log::debug!(
                            "supervisor {}: exit from {from} ({reason}), not a child",
                            ctx.pid()
                        ),
                    }
                    continue;
                }
                Err(env) => env,
            };
            let env = match env.downcast::<CallRequest<Request, Answer>>() {
                Ok(CallRequest { from, req }) => {
                    self.answer(ctx, req, from).await;
                    continue;
                }
                Err(env) => env,
            };
            match env.downcast::<StopRequest>() {
                Ok(StopRequest { reason }) => {
                    self.terminate_all(ctx).await;
                    return reason;
                }
                Err(env) => log::debug!("supervisor {}: unexpected {env:?}", ctx.pid()),
            }
        }
    }

    async fn answer(&mut self, ctx: &mut Process, req: Request, from: ReplyTo<Answer>) {
        let answer = match req {
            Request::WhichChildren => Answer::Children(
                self.children
                    .iter()
                    .map(|c| (c.spec.id.clone(), c.pid.clone()))
                    .collect(),
            ),
            Request::TerminateChild(id) => match self.index_of(&id) {
                Some(index) => {
                    self.terminate_range(ctx, index..index + 1).await;
                    if self.children[index].spec.restart == Restart::Temporary {
                        self.children.remove(index);
                    }
                    Answer::Done
                }
                None => Answer::Failed(SupervisorError::NotFound(id)),
            },
            Request::RestartChild(id) => match self.index_of(&id) {
                Some(index) if self.children[index].pid.is_some() => {
                    Answer::Failed(SupervisorError::Running(id))
                }
                Some(index) => match self.start_range(ctx, index..index + 1, true).await {
                    Ok(()) => match &self.children[index].pid {
                        Some(pid) => Answer::Started(pid.clone()),
                        None => Answer::Failed(SupervisorError::NotFound(id)),
                    },
                    Err((_, reason)) => Answer::Failed(SupervisorError::StartFailed { id, reason }),
                },
                None => Answer::Failed(SupervisorError::NotFound(id)),
            },
        };
        from.reply(ctx, answer);
    }

    fn index_of(&self, id: &str) -> Option<usize> {
        self.children.iter().position(|c| c.spec.id == id)
    }

    /// A child exited: restart it (and its group) if its restart type says so.
    async fn child_exited(
        &mut self,
        ctx: &mut Process,
        index: usize,
        reason: ExitReason,
    ) -> Result<(), GaveUp> {
        let child = &mut self.children[index];
        child.pid = None;
        let id = child.spec.id.clone();
        if reason.is_clean() {
            log::debug!("supervisor {}: child {id} exited: {reason}", ctx.pid());
        } else {
            log::warn!("supervisor {}: child {id} exited: {reason}", ctx.pid());
        }
        match child.spec.restart {
            Restart::Temporary => {
                self.children.remove(index);
                Ok(())
            }
            Restart::Transient if reason.is_clean() => Ok(()),
            Restart::Permanent | Restart::Transient => self.restart(ctx, &id).await,
        }
    }

    /// Restarts child `id` and the others its strategy names, retrying (each attempt
    /// counts toward the intensity) until they start or the supervisor gives up.
    async fn restart(&mut self, ctx: &mut Process, id: &str) -> Result<(), GaveUp> {
        loop {
            if !self.note_restart() {
                log::error!(
                    "supervisor {}: reached_max_restart_intensity (more than {} restarts in \
                     {:?}); shutting down",
                    ctx.pid(),
                    self.intensity,
                    self.period
                );
                self.terminate_all(ctx).await;
                return Err(GaveUp);
            }
            let Some(group) = self.group_of(id) else {
                return Ok(());
            };
            self.terminate_range(ctx, group).await;
            // Temporary children stopped by a sibling's restart are not restarted.
            self.children
                .retain(|c| c.pid.is_some() || c.spec.restart != Restart::Temporary);
            let Some(group) = self.group_of(id) else {
                return Ok(());
            };
            match self.start_range(ctx, group, true).await {
                Ok(()) => return Ok(()),
                Err((failed, reason)) => log::error!(
                    "supervisor {}: child {} failed to restart: {reason}",
                    ctx.pid(),
                    self.children[failed].spec.id
                ),
            }
        }
    }

    /// The children restarted with child `id`, by strategy.
    fn group_of(&self, id: &str) -> Option<Range<usize>> {
        let index = self.index_of(id)?;
        Some(match self.strategy {
            Strategy::OneForOne => index..index + 1,
            Strategy::OneForAll => 0..self.children.len(),
            Strategy::RestForOne => index..self.children.len(),
        })
    }

    /// Records one restart; false when that makes more than `intensity` in `period`.
    fn note_restart(&mut self) -> bool {
        let now = Instant::now();
        self.restart_log.push_back(now);
        while let Some(&oldest) = self.restart_log.front()
            && now.duration_since(oldest) > self.period
        {
            self.restart_log.pop_front();
        }
        self.restart_log.len() <= self.intensity as usize
    }

    /// Starts, in order, the children of `range` that are not running. `Err` names the
    /// first that failed (those before it keep running).
    async fn start_range(
        &mut self,
        ctx: &mut Process,
        range: Range<usize>,
        restarting: bool,
    ) -> Result<(), (usize, ExitReason)> {
        for index in range {
            if self.children[index].pid.is_some() {
                continue;
            }
            let start = self.children[index].spec.start.clone();
            let pid = start_child(ctx, &start).await.map_err(|r| (index, r))?;
            let child = &mut self.children[index];
            if restarting {
                child.restarts += 1;
            }
            ctx.node().set_restarts(&pid, child.restarts);
            log::debug!(
                "supervisor {}: started child {} as {pid}",
                ctx.pid(),
                child.spec.id
            );
            child.pid = Some(pid);
        }
        Ok(())
    }

    async fn terminate_all(&mut self, ctx: &mut Process) {
        let all = 0..self.children.len();
        self.terminate_range(ctx, all).await;
    }

    /// Shuts down the running children of `range`, last first.
    async fn terminate_range(&mut self, ctx: &mut Process, range: Range<usize>) {
        for index in range.rev() {
            let child = &mut self.children[index];
            if let Some(pid) = child.pid.take() {
                let reason = shutdown_child(ctx, &pid, child.spec.shutdown).await;
                log::debug!(
                    "supervisor {}: child {} shut down: {reason}",
                    ctx.pid(),
                    child.spec.id
                );
            }
        }
    }
}

/// Calls a start function, turning a panic into a failed start, and links the new pid
/// (a no-op when the start function linked it already, as it should).
async fn start_child(ctx: &mut Process, start: &Arc<StartFn>) -> Result<Pid, ExitReason> {
    let fut = gen_server::guarded(|| start(&*ctx))?;
    let pid = AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .map_err(|panic| ExitReason::from_panic(&*panic))??;
    ctx.link(&pid);
    Ok(pid)
}

/// Shuts one child down and waits until it is gone; gives its exit reason. The child is
/// unlinked and monitored first (as OTP does), so the wait ends even if it is already
/// dead or has unlinked itself.
async fn shutdown_child(ctx: &mut Process, pid: &Pid, how: Shutdown) -> ExitReason {
    let mref = ctx.monitor(pid);
    ctx.unlink(pid);
    if let Some(exit) = ctx
        .receive_match::<Exit>(Some(Duration::ZERO), |e| &e.from == pid)
        .await
    {
        // It had exited already; the monitor's Down (noproc or its reason) is flushed.
        ctx.demonitor(mref);
        return exit.reason;
    }
    match how {
        Shutdown::BrutalKill => {
            ctx.exit(pid, ExitReason::Kill);
            wait_down(ctx, mref, None)
                .await
                .unwrap_or(ExitReason::Killed)
        }
        Shutdown::Infinity => {
            ctx.exit(pid, ExitReason::Shutdown);
            wait_down(ctx, mref, None)
                .await
                .unwrap_or(ExitReason::Shutdown)
        }
        Shutdown::Timeout(limit) => {
            ctx.exit(pid, ExitReason::Shutdown);
            match wait_down(ctx, mref, Some(limit)).await {
                Some(reason) => reason,
                None => {
                    log::warn!(
                        "supervisor {}: child {pid} did not shut down within {limit:?}; killing it",
                        ctx.pid()
                    );
                    ctx.exit(pid, ExitReason::Kill);
                    wait_down(ctx, mref, None)
                        .await
                        .unwrap_or(ExitReason::Killed)
                }
            }
        }
    }
}

/// Waits for the `Down` of monitor `mref`; its reason, or `None` after `timeout`.
async fn wait_down(ctx: &mut Process, mref: Ref, timeout: Option<Duration>) -> Option<ExitReason> {
    ctx.receive_match::<Down>(timeout, |d| d.mref == mref)
        .await
        .map(|d| d.reason)
}
