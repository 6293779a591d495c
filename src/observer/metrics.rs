//! `/metrics`: the latest look at the cluster in Prometheus' text format, encoded by
//! `prometheus-client` from the nodes' status replies (counters the nodes keep, read as
//! they are at each look; every series carries a `node` label).

use super::reading::NodeReading;
use kv_app::service_counters::LATENCY_BOUNDS;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::fmt::Error;

/// The readings to encode.
#[derive(Debug)]
struct Readings(Vec<NodeReading>);

type Labels = Vec<(&'static str, String)>;

/// One family: its name, help, and a value per label set.
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    series: Vec<(Labels, M)>,
) -> Result<(), Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, value) in series {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn node(name: &str) -> Labels {
    vec![("node", name.to_string())]
}

impl Collector for Readings {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), Error> {
        let answering: Vec<(&str, &kv_app::NodeStatus)> = self
            .0
            .iter()
            .filter_map(|r| r.status().map(|s| (r.member.name.as_str(), s)))
            .collect();
        let counters = |f: &dyn Fn(&kv_app::NodeStatus) -> Vec<(Labels, u64)>| {
            answering
                .iter()
                .flat_map(|(n, s)| {
                    f(s).into_iter().map(move |(mut l, v)| {
                        l.insert(0, ("node", n.to_string()));
                        (l, ConstCounter::new(v))
                    })
                })
                .collect::<Vec<_>>()
        };
        let gauges = |f: &dyn Fn(&kv_app::NodeStatus) -> i64| {
            answering
                .iter()
                .map(|(n, s)| (node(n), ConstGauge::new(f(s))))
                .collect::<Vec<_>>()
        };
        let count = |v: u64| -> i64 { i64::try_from(v).unwrap_or(i64::MAX) };
        family(
            &mut e,
            "paxoskv_node_up",
            "Whether the node answered the observer's last status request",
            MetricType::Gauge,
            self.0
                .iter()
                .map(|r| {
                    (
                        node(&r.member.name),
                        ConstGauge::new(i64::from(r.status.is_ok())),
                    )
                })
                .collect(),
        )?;
        family(
            &mut e,
            "paxoskv_operations",
            "Operation requests the node's kv server took, by kind",
            MetricType::Counter,
            counters(&|s| {
                vec![
                    (vec![("kind", "read".into())], s.kv.ops.read),
                    (vec![("kind", "write".into())], s.kv.ops.write),
                    (vec![("kind", "write-hash".into())], s.kv.ops.write_hash),
                ]
            }),
        )?;
        {
            let mut metric = e.encode_descriptor(
                "paxoskv_operation_latency_seconds",
                "Time from an operation request reaching the kv server to its manager ending",
                None,
                MetricType::Histogram,
            )?;
            for (n, s) in &answering {
                let ops = &s.kv.ops;
                let buckets: Vec<(f64, u64)> = LATENCY_BOUNDS
                    .iter()
                    .copied()
                    .chain(std::iter::once(f64::INFINITY))
                    .zip(ops.latency_buckets.iter().copied())
                    .collect();
                let labels = node(n);
                metric.encode_family(&labels)?.encode_histogram::<Labels>(
                    ops.latency_sum_micros as f64 / 1e6,
                    ops.latency_count(),
                    &buckets,
                    None::<&HashMap<_, _>>,
                )?;
            }
        }
        family(
            &mut e,
            "paxoskv_decisions",
            "Paxos instances decided and applied to this node's data",
            MetricType::Counter,
            counters(&|s| vec![(vec![], s.kv.applied)]),
        )?;
        family(
            &mut e,
            "paxoskv_proposals_lost",
            "Batches this node proposed whose instance another value won",
            MetricType::Counter,
            counters(&|s| vec![(vec![], s.kv.proposals_lost)]),
        )?;
        family(
            &mut e,
            "paxoskv_dropped_messages",
            "Messages the node's faults dropped, by fault",
            MetricType::Counter,
            counters(&|s| {
                let d = s.traffic.dropped_by;
                vec![
                    (vec![("fault", "deaf".into())], d.deaf),
                    (vec![("fault", "allow".into())], d.cut),
                    (vec![("fault", "unreliable".into())], d.lost_in + d.lost_out),
                ]
            }),
        )?;
        family(
            &mut e,
            "paxoskv_process_restarts",
            "Restarts of each registered process by its supervisor",
            MetricType::Counter,
            counters(&|s| {
                s.processes
                    .iter()
                    .filter_map(|p| {
                        let name = p.name.clone()?;
                        Some((vec![("process", name)], u64::from(p.restarts)))
                    })
                    .collect()
            }),
        )?;
        family(
            &mut e,
            "paxoskv_paxos_max",
            "The highest Paxos instance this node knows of",
            MetricType::Gauge,
            gauges(&|s| count(s.paxos.max)),
        )?;
        family(
            &mut e,
            "paxoskv_paxos_min",
            "The lowest Paxos instance this node still holds",
            MetricType::Gauge,
            gauges(&|s| count(s.paxos.min)),
        )?;
        family(
            &mut e,
            "paxoskv_paxos_held",
            "Paxos instances held in memory",
            MetricType::Gauge,
            gauges(&|s| count(s.paxos.held as u64)),
        )?;
        family(
            &mut e,
            "paxoskv_keys",
            "Keys in this node's data",
            MetricType::Gauge,
            gauges(&|s| count(s.kv.keys as u64)),
        )?;
        family(
            &mut e,
            "paxoskv_processes",
            "Live processes on the node",
            MetricType::Gauge,
            gauges(&|s| count(s.traffic.processes as u64)),
        )?;
        // fsyncs: only durable nodes make them; none exists yet, so the family is empty
        // (the storage crate will give its counter to status).
        Ok(())
    }
}

/// The readings as Prometheus text.
pub fn encode(readings: &[NodeReading]) -> Result<String, Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Readings(readings.to_vec())));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}
