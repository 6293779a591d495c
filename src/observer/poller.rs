//! The observer's loop: looks at the cluster every half second (and right after a
//! control), finds the events since
//! the last look, keeps the rates' history, and publishes the result for the page (its
//! JSON made once per look, whoever listens) and for `/api/status` and `/metrics`.

use super::events::{self, Event};
use super::rates::{History, Sample};
use super::reading::{Cluster, NodeReading};
use super::view::{NodeView, PageView};
use runtime::clock;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// How often the cluster is looked at.
pub const INTERVAL: Duration = Duration::from_millis(500);
/// How long a node may take to answer one look.
const ANSWER_WITHIN: Duration = Duration::from_millis(800);
/// How many events the page is sent.
const EVENTS_KEPT: usize = 200;

/// One look, as published.
#[derive(Debug, Default)]
pub struct Published {
    /// The page's view as JSON.
    pub page_json: String,
    pub readings: Vec<NodeReading>,
}

/// Looks at the cluster until every receiver is gone: every [`INTERVAL`], and at once when
/// `nudge` is notified (after a control, so that its effect shows without waiting).
pub async fn run(cluster: Cluster, tx: watch::Sender<Arc<Published>>, nudge: Arc<Notify>) {
    let started = clock::now();
    let mut history = History::default();
    let mut log: VecDeque<Event> = VecDeque::new();
    let mut previous: Option<Vec<NodeReading>> = None;
    let mut ticker = tokio::time::interval(INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = nudge.notified() => {}
        }
        let readings = cluster.read(ANSWER_WITHIN).await;
        let at_ms = clock::millis_since(started);
        if let Some(before) = &previous {
            for e in events::changes(before, &readings, at_ms) {
                log::info!("observer: {} {}: {}", e.kind, e.node, e.text);
                log.push_back(e);
            }
            while log.len() > EVENTS_KEPT {
                log.pop_front();
            }
        }
        history.push(Sample::of(&readings, at_ms));
        let leader = events::leader(&readings);
        let view = PageView {
            at_ms,
            nodes: readings
                .iter()
                .map(|r| NodeView::of(r, leader.as_deref()))
                .collect(),
            leader,
            rates: history.current(2000),
            chart: history.chart(1000),
            events: log.iter().cloned().collect(),
        };
        let page_json = match serde_json::to_string(&view) {
            Ok(j) => j,
            Err(e) => {
                log::warn!("observer: cannot encode the page's view: {e}");
                continue;
            }
        };
        previous = Some(readings.clone());
        if tx
            .send(Arc::new(Published {
                page_json,
                readings,
            }))
            .is_err()
        {
            return;
        }
    }
}
