//! Group commit: a [`Log`] on a dedicated OS thread. Callers on any thread (tokio
//! workers included) hand records over and return at once; the thread takes everything
//! queued, writes it with one write and makes it durable with one `fdatasync`, then
//! tells each caller (callback or [`Completion`]) that its records are durable. While
//! one fdatasync runs, new appends queue up for the next, so the number of fsyncs adapts
//! to the load: one per record when idle, one per many records under load.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::completion::{Completer, Completion, completion};
use crate::error::{Error, Result};
use crate::format::Identity;
use crate::fs::FileSystem;
use crate::log::{Log, Options, SnapshotOutcome};
use crate::recovery::Recovered;
use crate::stats::StorageStats;

/// What to run once a command is durable (or failed): quick, non-blocking.
pub type Then<T> = Box<dyn FnOnce(Result<T>) + Send + 'static>;

/// Queued appends: each caller's records and who to tell.
type Group = Vec<(Vec<Vec<u8>>, Notify<Range<u64>>)>;

/// Who to tell when a command is done.
pub(crate) enum Notify<T> {
    Completion(Completer<T>),
    Callback(Then<T>),
}

impl<T> Notify<T> {
    pub(crate) fn send(self, result: Result<T>) {
        match self {
            Notify::Completion(completer) => completer.complete(result),
            Notify::Callback(callback) => {
                // A caller's bug must not take the storage thread (and every other
                // caller's durability) down with it.
                let call = std::panic::AssertUnwindSafe(move || callback(result));
                if std::panic::catch_unwind(call).is_err() {
                    log::error!("an append callback panicked; the storage thread goes on");
                }
            }
        }
    }
}

pub(crate) enum Command {
    Append {
        payloads: Vec<Vec<u8>>,
        notify: Notify<Range<u64>>,
    },
    Snapshot {
        position: u64,
        payload: Vec<u8>,
        notify: Notify<SnapshotOutcome>,
    },
}

struct Queue {
    commands: Vec<Command>,
    stopping: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

/// What a driver needs from durable storage, whether the fsyncs run on a thread of their
/// own ([`GroupCommitLog`], a real node) or when a simulation says so
/// ([`crate::ManualCommitLog`]). Commands are carried out in the order they are given.
pub trait CommitLog: Send + Sync {
    /// Queues records; `then` runs once they are durable (or the append failed), with
    /// their indices. It must be quick and must not block: send a message, wake a task.
    fn append_then(&self, payloads: Vec<Vec<u8>>, then: Then<Range<u64>>);

    /// Queues a snapshot holding everything below `position`, after every record queued
    /// before it; the log below it is removed once the snapshot is durable.
    fn snapshot_then(&self, position: u64, payload: Vec<u8>, then: Then<SnapshotOutcome>);

    /// The counters now.
    fn stats(&self) -> StorageStats;

    /// Queues records; the completion gives their indices once they are durable.
    fn append(&self, payloads: Vec<Vec<u8>>) -> Completion<Range<u64>> {
        let (completer, completion) = completion();
        self.append_then(payloads, Box::new(move |result| completer.complete(result)));
        completion
    }

    /// Serialises values with postcard and queues them as records.
    fn append_values<T: serde::Serialize>(&self, values: &[T]) -> Result<Completion<Range<u64>>>
    where
        Self: Sized,
    {
        let payloads = values
            .iter()
            .map(crate::payload::encode)
            .collect::<Result<Vec<_>>>()?;
        Ok(self.append(payloads))
    }

    /// Queues a snapshot; the completion resolves once it is durable.
    fn snapshot(&self, position: u64, payload: Vec<u8>) -> Completion<SnapshotOutcome> {
        let (completer, completion) = completion();
        self.snapshot_then(
            position,
            payload,
            Box::new(move |result| completer.complete(result)),
        );
        completion
    }
}

/// Refuses an oversized record alone, so it cannot fail the batch it would have joined;
/// otherwise gives the command back.
pub(crate) fn check_sizes(
    payloads: Vec<Vec<u8>>,
    notify: Notify<Range<u64>>,
    max: u32,
) -> Option<Command> {
    if let Some(big) = payloads.iter().find(|p| p.len() > max as usize) {
        let size = big.len();
        notify.send(Err(Error::RecordTooLarge { size, max }));
        return None;
    }
    Some(Command::Append { payloads, notify })
}

/// A write-ahead log with group commit on its own thread. Cheap to share behind an
/// `Arc`; dropping it finishes what is queued, then stops the thread.
pub struct GroupCommitLog {
    shared: Arc<Shared>,
    stats: Arc<Mutex<StorageStats>>,
    max_record_bytes: u32,
    dir: PathBuf,
    thread: Option<JoinHandle<()>>,
}

impl GroupCommitLog {
    /// Opens (recovering) the log in `dir` and starts its thread.
    pub fn open<F: FileSystem>(
        fs: F,
        dir: impl Into<PathBuf>,
        identity: Identity,
        options: Options,
    ) -> Result<(GroupCommitLog, Recovered)> {
        let (log, recovered) = Log::open(fs, dir, identity, options)?;
        Ok((GroupCommitLog::start(log)?, recovered))
    }

    /// Runs an open log on a new thread.
    pub fn start<F: FileSystem>(log: Log<F>) -> Result<GroupCommitLog> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                commands: Vec::new(),
                stopping: false,
            }),
            wake: Condvar::new(),
        });
        let stats = log.stats_handle();
        let max_record_bytes = log.max_record_bytes();
        let dir = log.dir().to_path_buf();
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("paxoskv-wal".into())
            .spawn(move || run(log, &thread_shared))
            .map_err(|err| Error::io("cannot start the storage thread for", &dir, &err))?;
        Ok(GroupCommitLog {
            shared,
            stats,
            max_record_bytes,
            dir,
            thread: Some(thread),
        })
    }

    /// The data dir.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The counters now (also through [`CommitLog::stats`]).
    pub fn stats(&self) -> StorageStats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn submit(&self, command: Command) {
        let mut queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.stopping {
            drop(queue);
            // Dropping the command's notifier reports `Stopped`.
            return;
        }
        queue.commands.push(command);
        drop(queue);
        self.shared.wake.notify_one();
    }

    /// Finishes what is queued and stops the thread.
    pub fn close(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stopping = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            log::error!("the storage thread of {} panicked", self.dir.display());
        }
    }
}

impl CommitLog for GroupCommitLog {
    fn append_then(&self, payloads: Vec<Vec<u8>>, then: Then<Range<u64>>) {
        let notify = Notify::Callback(then);
        if let Some(command) = check_sizes(payloads, notify, self.max_record_bytes) {
            self.submit(command);
        }
    }

    fn snapshot_then(&self, position: u64, payload: Vec<u8>, then: Then<SnapshotOutcome>) {
        self.submit(Command::Snapshot {
            position,
            payload,
            notify: Notify::Callback(then),
        });
    }

    fn stats(&self) -> StorageStats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn append(&self, payloads: Vec<Vec<u8>>) -> Completion<Range<u64>> {
        let (completer, completion) = completion();
        let notify = Notify::Completion(completer);
        if let Some(command) = check_sizes(payloads, notify, self.max_record_bytes) {
            self.submit(command);
        }
        completion
    }

    fn snapshot(&self, position: u64, payload: Vec<u8>) -> Completion<SnapshotOutcome> {
        let (completer, completion) = completion();
        self.submit(Command::Snapshot {
            position,
            payload,
            notify: Notify::Completion(completer),
        });
        completion
    }
}

impl Drop for GroupCommitLog {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Marks the queue stopped when the storage thread ends, however it ends, and fails
/// what is still queued (`Stopped`), so no caller waits forever.
struct StopOnExit<'a>(&'a Shared);

impl Drop for StopOnExit<'_> {
    fn drop(&mut self) {
        let left = {
            let mut queue = self.0.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.stopping = true;
            std::mem::take(&mut queue.commands)
        };
        drop(left);
    }
}

/// The storage thread: take everything queued, commit it, repeat.
fn run<F: FileSystem>(mut log: Log<F>, shared: &Shared) {
    let _stop_on_exit = StopOnExit(shared);
    loop {
        let commands = {
            let mut queue = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            while queue.commands.is_empty() && !queue.stopping {
                queue = shared.wake.wait(queue).unwrap_or_else(|e| e.into_inner());
            }
            if queue.commands.is_empty() {
                return;
            }
            std::mem::take(&mut queue.commands)
        };
        process(&mut log, commands);
    }
}

/// Carries out queued commands in order: each run of appends with one write and one
/// fdatasync, each snapshot after the appends before it.
pub(crate) fn process<F: FileSystem>(log: &mut Log<F>, commands: Vec<Command>) {
    let mut group = Vec::new();
    for command in commands {
        match command {
            Command::Append { payloads, notify } => group.push((payloads, notify)),
            Command::Snapshot {
                position,
                payload,
                notify,
            } => {
                commit(log, std::mem::take(&mut group));
                notify.send(log.snapshot(position, &payload));
            }
        }
    }
    commit(log, group);
}

/// One write and one fdatasync for a whole group of appends, then every caller is told.
fn commit<F: FileSystem>(log: &mut Log<F>, group: Group) {
    if group.is_empty() {
        return;
    }
    let all: Vec<&[u8]> = group
        .iter()
        .flat_map(|(payloads, _)| payloads.iter().map(Vec::as_slice))
        .collect();
    let outcome = log.append(&all).and_then(|range| {
        log.sync()?;
        Ok(range)
    });
    drop(all);
    match outcome {
        Ok(range) => {
            let mut next = range.start;
            for (payloads, notify) in group {
                let end = next + payloads.len() as u64;
                notify.send(Ok(next..end));
                next = end;
            }
        }
        Err(err) => {
            for (_, notify) in group {
                notify.send(Err(err.clone()));
            }
        }
    }
}
