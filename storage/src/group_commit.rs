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

type Callback<T> = Box<dyn FnOnce(Result<T>) + Send + 'static>;

/// Queued appends: each caller's records and who to tell.
type Group = Vec<(Vec<Vec<u8>>, Notify<Range<u64>>)>;

/// Who to tell when a command is done.
enum Notify<T> {
    Completion(Completer<T>),
    Callback(Callback<T>),
}

impl<T> Notify<T> {
    fn send(self, result: Result<T>) {
        match self {
            Notify::Completion(completer) => completer.complete(result),
            Notify::Callback(callback) => callback(result),
        }
    }
}

enum Command {
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

    /// Queues records; the completion gives their indices once they are durable.
    pub fn append(&self, payloads: Vec<Vec<u8>>) -> Completion<Range<u64>> {
        let (completer, completion) = completion();
        self.submit_append(payloads, Notify::Completion(completer));
        completion
    }

    /// Queues records; `then` runs on the storage thread once they are durable (or the
    /// append failed). It must be quick and must not block: send a message, wake a task.
    pub fn append_then(
        &self,
        payloads: Vec<Vec<u8>>,
        then: impl FnOnce(Result<Range<u64>>) + Send + 'static,
    ) {
        self.submit_append(payloads, Notify::Callback(Box::new(then)));
    }

    /// Serialises values with postcard and queues them as records.
    pub fn append_values<T: serde::Serialize>(
        &self,
        values: &[T],
    ) -> Result<Completion<Range<u64>>> {
        let payloads = values
            .iter()
            .map(crate::payload::encode)
            .collect::<Result<Vec<_>>>()?;
        Ok(self.append(payloads))
    }

    /// Queues a snapshot holding everything below `position`; it is written after every
    /// record queued before it is durable, and the log below it is then removed.
    pub fn snapshot(&self, position: u64, payload: Vec<u8>) -> Completion<SnapshotOutcome> {
        let (completer, completion) = completion();
        self.submit(Command::Snapshot {
            position,
            payload,
            notify: Notify::Completion(completer),
        });
        completion
    }

    /// The counters now.
    pub fn stats(&self) -> StorageStats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn submit_append(&self, payloads: Vec<Vec<u8>>, notify: Notify<Range<u64>>) {
        let max = self.max_record_bytes;
        if let Some(big) = payloads.iter().find(|p| p.len() > max as usize) {
            // Refused alone, so it cannot fail the batch it would have joined.
            let size = big.len();
            notify.send(Err(Error::RecordTooLarge { size, max }));
            return;
        }
        self.submit(Command::Append { payloads, notify });
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

impl Drop for GroupCommitLog {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The storage thread: take everything queued, commit it, repeat.
fn run<F: FileSystem>(mut log: Log<F>, shared: &Shared) {
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
        let mut group = Vec::new();
        for command in commands {
            match command {
                Command::Append { payloads, notify } => group.push((payloads, notify)),
                Command::Snapshot {
                    position,
                    payload,
                    notify,
                } => {
                    commit(&mut log, std::mem::take(&mut group));
                    notify.send(log.snapshot(position, &payload));
                }
            }
        }
        commit(&mut log, group);
    }
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
