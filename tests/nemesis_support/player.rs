//! Playing a schedule against a cluster: each variant says how an action is applied (a
//! [`FaultApplier`]); the players take the steps at their times from the run's origin,
//! in an async test or on a thread of its own.

use std::time::Instant;

use runtime::clock::Instant as ClockInstant;

use super::schedule::{Action, Schedule};

/// Applies one node-level action to a cluster. An error is reported, not fatal: the run
/// goes on, and the test decides what the errors mean.
pub trait FaultApplier {
    fn apply(&mut self, action: &Action) -> Result<(), String>;
}

/// Takes every step of `schedule` at `origin + step.at` (tokio timers); returns the
/// errors, each with its step.
pub async fn play(
    schedule: &Schedule,
    origin: ClockInstant,
    applier: &mut impl FaultApplier,
) -> Vec<String> {
    let mut errors = Vec::new();
    for step in &schedule.steps {
        tokio::time::sleep_until(origin + step.at).await;
        take(step.at.as_secs_f64(), &step.action, applier, &mut errors);
    }
    errors
}

/// As [`play`], blocking the calling thread between steps.
pub fn play_blocking(
    schedule: &Schedule,
    origin: Instant,
    applier: &mut impl FaultApplier,
) -> Vec<String> {
    let mut errors = Vec::new();
    for step in &schedule.steps {
        let due = origin + step.at;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        take(step.at.as_secs_f64(), &step.action, applier, &mut errors);
    }
    errors
}

/// Undoes every fault on the surviving nodes; returns the errors.
pub fn heal(schedule: &Schedule, applier: &mut impl FaultApplier) -> Vec<String> {
    let mut errors = Vec::new();
    for action in schedule.heal() {
        take(
            schedule.duration.as_secs_f64(),
            &action,
            applier,
            &mut errors,
        );
    }
    errors
}

fn take(at_secs: f64, action: &Action, applier: &mut impl FaultApplier, errors: &mut Vec<String>) {
    log::info!("nemesis {at_secs:.3}s: {action}");
    if let Err(error) = applier.apply(action) {
        log::warn!("nemesis {at_secs:.3}s: {action} failed: {error}");
        errors.push(format!("{at_secs:.3}s {action}: {error}"));
    }
}

#[cfg(test)]
mod tests {
    use super::super::schedule::{Fault, FaultWindow};
    use super::*;
    use std::time::Duration;

    /// Records what it is asked to do, and when.
    struct Recording {
        origin: Instant,
        taken: Vec<(Duration, Action)>,
    }

    impl FaultApplier for Recording {
        fn apply(&mut self, action: &Action) -> Result<(), String> {
            self.taken.push((self.origin.elapsed(), action.clone()));
            match action {
                Action::Kill { .. } => Err("no such process".to_string()),
                _ => Ok(()),
            }
        }
    }

    #[test]
    fn steps_are_taken_in_order_not_before_their_time_and_errors_reported() {
        let ms = Duration::from_millis;
        let schedule = Schedule::from_windows(
            3,
            ms(200),
            vec![
                FaultWindow {
                    start: ms(20),
                    end: ms(60),
                    fault: Fault::Deaf { node: 1 },
                },
                FaultWindow {
                    start: ms(40),
                    end: ms(40),
                    fault: Fault::Kill {
                        node: 2,
                        process: "kv_server",
                    },
                },
            ],
        );
        let origin = Instant::now();
        let mut applier = Recording {
            origin,
            taken: Vec::new(),
        };
        let errors = play_blocking(&schedule, origin, &mut applier);
        let actions: Vec<&Action> = applier.taken.iter().map(|(_, a)| a).collect();
        assert_eq!(
            actions,
            vec![
                &Action::Deaf { node: 1 },
                &Action::Kill {
                    node: 2,
                    process: "kv_server"
                },
                &Action::Listen { node: 1 },
            ]
        );
        for ((at, _), step) in applier.taken.iter().zip(&schedule.steps) {
            assert!(*at >= step.at, "{:?} taken at {at:?}", step.action);
        }
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("kill kv_server"), "{errors:?}");
        applier.taken.clear();
        assert!(heal(&schedule, &mut applier).is_empty());
        assert_eq!(applier.taken.len(), 9);
    }
}
