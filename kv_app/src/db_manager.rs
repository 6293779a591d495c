//! The DB manager (the original's `BD manager`, registered as `db_manager`): applies the
//! decided log to the data in instance order (dropping duplicate operations by their
//! reference), calls Paxos `done` so the log is forgotten, answers operation managers
//! waiting for the data to reach their instance, and fills holes: an instance seen but
//! not decided here for a while is proposed again with an empty batch, which either
//! learns the value decided elsewhere or decides nothing-to-do, so the log never stalls.
//!
//! Its state (the [`Store`]) lives outside the process, in the kv application's
//! [`SharedStore`], so a DB manager restarted by its supervisor carries on where it was.
//!
//! On a durable node it calls `done(S)` only once a snapshot of the store through S is
//! durable (see [`crate::durable`]): Paxos must not forget an instance a restart of this
//! node would have to apply again. After a restart it proposes (empty batches) every
//! instance up to the highest its acceptor had accepted, to learn what was chosen there.

use crate::durable::{SnapshotWritten, StoreSnapshots};
use crate::messages::{UpdateDb, Updated};
use crate::store::Store;
use crate::{Batch, Log};
use parking_lot::Mutex;
use paxos_app::{Decided, Status};
use runtime::clock::{Duration, Instant};
use runtime::{CallResult, Envelope, ExitReason, Flow, GenServer, Process, ReplyTo};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The store, shared between the DB manager and whoever reads its figures.
pub type SharedStore = Arc<Mutex<Store>>;

/// How often the DB manager looks for holes, and how long a hole may stay before it
/// proposes an empty batch to fill it.
#[derive(Clone, Copy, Debug)]
pub struct HoleFilling {
    pub tick: Duration,
    pub patience: Duration,
}

impl Default for HoleFilling {
    fn default() -> Self {
        HoleFilling {
            tick: Duration::from_millis(50),
            patience: Duration::from_millis(200),
        }
    }
}

/// The DB manager's state (its data lives in the shared store).
pub(crate) struct DbManager {
    log: Log,
    store: SharedStore,
    /// Operation managers waiting for the data to reach an instance.
    waiting: BTreeMap<u64, Vec<UpdateDb>>,
    /// The next instance to apply, and since when it has been waited for.
    stalled_since: Option<(u64, Instant)>,
    holes: HoleFilling,
    /// The store's snapshots on a durable node (shared: they outlive a restart of this
    /// process); `None` in memory mode, where `done` follows every apply.
    snapshots: Option<Arc<Mutex<StoreSnapshots>>>,
    /// After a restart from disk: propose every instance up to this one at start.
    recover_through: u64,
}

impl DbManager {
    /// Applies every instance decided here, in order; answers who can be answered.
    fn apply_ready(&mut self, p: &Process) {
        let mut applied_any = false;
        let applied = {
            let mut store = self.store.lock();
            loop {
                let next = store.applied_through() + 1;
                let Status::Decided(batch) = self.log.status(next) else {
                    break;
                };
                if let Err(e) = store.apply(next, &batch) {
                    log::error!("db_manager: {e}");
                    break;
                }
                applied_any = true;
            }
            store.applied_through()
        };
        if applied_any {
            match &self.snapshots {
                None => self.log.done(applied),
                Some(snapshots) => {
                    let store = self.store.lock();
                    snapshots.lock().maybe_write(p.node(), &store);
                }
            }
            self.stalled_since = None;
        }
        let later = self.waiting.split_off(&(applied + 1));
        let ready = std::mem::replace(&mut self.waiting, later);
        for (_, requests) in ready {
            for r in requests {
                self.answer(p, r);
            }
        }
    }

    fn answer(&self, p: &Process, r: UpdateDb) {
        let result = self
            .store
            .lock()
            .held_result(r.reference)
            .map(str::to_string);
        p.send(
            &r.manager,
            Updated {
                reference: r.reference,
                result,
            },
        );
    }

    /// Proposes an empty batch at the next instance when it has been missing too long.
    fn fill_holes(&mut self) {
        let next = self.store.lock().applied_through() + 1;
        let wanted = self.log.max() >= next || !self.waiting.is_empty();
        if !wanted {
            self.stalled_since = None;
            return;
        }
        match self.stalled_since {
            Some((seq, since)) if seq == next => {
                if since.elapsed() >= self.holes.patience {
                    log::debug!("db_manager: instance {next} missing; proposing an empty batch");
                    self.log.start(next, Batch::default());
                    self.stalled_since = Some((next, runtime::clock::now()));
                }
            }
            _ => self.stalled_since = Some((next, runtime::clock::now())),
        }
    }
}

/// The tick that makes the DB manager look for holes.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct HoleTick;

/// What can be asked of the DB manager with a call.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum DbQuery {
    /// How far the data is: keys and the highest instance applied.
    Progress,
}

/// The answer to [`DbQuery::Progress`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DbProgress {
    pub keys: usize,
    pub applied: u64,
}

impl DbManager {
    /// A DB manager working on `store` (which outlives it) for `log`.
    pub(crate) fn new(log: Log, store: SharedStore, holes: HoleFilling) -> Self {
        DbManager {
            log,
            store,
            waiting: BTreeMap::new(),
            stalled_since: None,
            holes,
            snapshots: None,
            recover_through: 0,
        }
    }

    /// A DB manager of a durable node: `done` waits for the store's snapshots, and every
    /// instance up to `recover_through` is proposed at start.
    pub(crate) fn durable(
        mut self,
        snapshots: Arc<Mutex<StoreSnapshots>>,
        recover_through: u64,
    ) -> Self {
        self.snapshots = Some(snapshots);
        self.recover_through = recover_through;
        self
    }
}

impl GenServer for DbManager {
    type Call = DbQuery;
    type Reply = DbProgress;
    type Cast = UpdateDb;

    /// Becomes Paxos's listener, applies what is already decided, starts the hole ticks.
    fn init(&mut self, ctx: &mut Process) -> Result<(), ExitReason> {
        self.log.set_listener(Some(ctx.pid().clone()));
        self.apply_ready(ctx);
        let next = self.store.lock().applied_through() + 1;
        if self.recover_through >= next {
            log::info!(
                "db_manager: learning instances {next}..={} again after a restart",
                self.recover_through
            );
            for seq in next..=self.recover_through {
                self.log.start(seq, Batch::default());
            }
        }
        ctx.send_after(self.holes.tick, ctx.pid(), HoleTick);
        Ok(())
    }

    fn handle_call(
        &mut self,
        req: DbQuery,
        _from: ReplyTo<DbProgress>,
        _ctx: &mut Process,
    ) -> CallResult<DbProgress> {
        match req {
            DbQuery::Progress => {
                let store = self.store.lock();
                CallResult::Reply(DbProgress {
                    keys: store.len(),
                    applied: store.applied_through(),
                })
            }
        }
    }

    /// `{actualizar_bd, NumInstancia, PidGestionador}`, cast by an operation manager.
    fn handle_cast(&mut self, r: UpdateDb, ctx: &mut Process) -> Flow {
        self.update(ctx, r);
        Flow::Continue
    }

    fn handle_info(&mut self, env: Envelope, ctx: &mut Process) -> Flow {
        let env = match env.downcast::<Decided<Batch>>() {
            Ok(_) => {
                self.apply_ready(ctx);
                return Flow::Continue;
            }
            Err(env) => env,
        };
        let env = match env.downcast::<SnapshotWritten>() {
            Ok(written) => {
                let done = self
                    .snapshots
                    .as_ref()
                    .and_then(|s| s.lock().written(written.through));
                if let Some(through) = done {
                    self.log.done(through);
                }
                return Flow::Continue;
            }
            Err(env) => env,
        };
        if env.is::<HoleTick>() {
            self.apply_ready(ctx);
            if let Some(snapshots) = &self.snapshots {
                let store = self.store.lock();
                snapshots.lock().maybe_write(ctx.node(), &store);
            }
            self.fill_holes();
            ctx.send_after(self.holes.tick, ctx.pid(), HoleTick);
        } else {
            log::debug!("db_manager: unexpected message {env:?}");
        }
        Flow::Continue
    }
}

impl DbManager {
    /// Answers an operation manager now, or once the data reaches its instance.
    fn update(&mut self, ctx: &Process, r: UpdateDb) {
        if self.store.lock().applied_through() >= r.instance {
            self.answer(ctx, r);
        } else {
            self.waiting.entry(r.instance).or_default().push(r);
            self.apply_ready(ctx);
        }
    }
}
