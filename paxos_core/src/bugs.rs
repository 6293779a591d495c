//! Deliberate bugs, for proving that the simulation catches real mistakes.
//!
//! Only with the `sim-bugs` cargo feature (test-only, off by default) can a bug be
//! switched on, and then only for the current thread (`inject`), so the simulations
//! that run in parallel with it stay correct. Without the feature `active` is a
//! constant `false` and every check folds away.

/// A mistake the core can be made to commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bug {
    /// A restored peer's acceptor forgets its promises and acceptances.
    AcceptorAmnesia,
    /// A repeated vote (promise or acceptance from the same peer) counts again.
    DuplicateVote,
    /// A proposer proposes its own value even when a promise reported an accepted one.
    OwnValueOverAccepted,
    /// Forgetting goes one instance above `min`: an instance some peer still needs goes.
    ForgetAboveMin,
    /// The messages of a step are released one batch before the records that justify them.
    SendBeforePersist,
}

#[cfg(feature = "sim-bugs")]
mod switch {
    use super::Bug;
    use std::cell::Cell;

    thread_local! {
        static ACTIVE: Cell<Option<Bug>> = const { Cell::new(None) };
    }

    pub(crate) fn active(bug: Bug) -> bool {
        ACTIVE.with(|active| active.get() == Some(bug))
    }

    /// Switches `bug` on for this thread until the guard is dropped.
    pub fn inject(bug: Bug) -> Injected {
        ACTIVE.with(|active| active.set(Some(bug)));
        Injected(())
    }

    /// Switches the injected bug off when dropped.
    pub struct Injected(());

    impl Drop for Injected {
        fn drop(&mut self) {
            ACTIVE.with(|active| active.set(None));
        }
    }
}

#[cfg(feature = "sim-bugs")]
pub use switch::{Injected, inject};

/// True when `bug` is switched on for this thread.
#[cfg(feature = "sim-bugs")]
pub(crate) fn active(bug: Bug) -> bool {
    switch::active(bug)
}

/// Always false: the bugs exist only with the `sim-bugs` feature.
#[cfg(not(feature = "sim-bugs"))]
#[inline(always)]
pub(crate) fn active(_bug: Bug) -> bool {
    false
}
