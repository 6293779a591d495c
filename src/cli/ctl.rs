//! `paxoskv ctl`: one control request (a fault, its undoing, status, a process kill, or
//! a question to the node's Paxos peer) sent to a node's control process `node_ctl`, as
//! control traffic that faults never drop.

use crate::cli::args::{CtlArgs, CtlCommand, DEFAULT_LOSS, PaxosCommand};
use crate::cli::endpoints::{self, Endpoint};
use crate::cli::error::CliError;
use crate::cli::{connect, cookie, output, probe};
use kv_app::control::{self, ControlError, ControlReply, ControlRequest, PaxosQuery};
use runtime::NodeName;
use runtime::faults::LossModel;

/// Runs the command.
pub async fn run(args: CtlArgs) -> Result<(), CliError> {
    let request = request_for(args.command, &args.node)?;
    let cookie = cookie::from_args(&args.cookie)?;
    connect::use_tls(&args.tls)?;
    let servers = [args.node.clone()];
    let node = connect::client_node(&cookie, &servers).await?;
    let target = NodeName::new(&args.node.name);
    let call = control::call(&node, &target, request, args.timeout);
    let answer = probe::unless_refused(call, &servers, &cookie).await;
    let outcome = match answer {
        Ok(Ok(ControlReply::Done)) => output::line("ok").map_err(CliError::io("writing stdout")),
        Ok(Ok(ControlReply::Status(status))) => print_json(&status, "the status"),
        Ok(Ok(ControlReply::Paxos(answer))) => print_json(&answer, "the Paxos answer"),
        Ok(Ok(ControlReply::Refused(reason))) => Err(CliError::Refused {
            node: args.node.name.clone(),
            reason,
        }),
        Ok(Err(ControlError::Timeout(..))) => {
            let report = probe::probe_all(&servers, &cookie).await;
            Err(CliError::Timeout(format!(
                "timeout: no answer from {} within {:?} ({})",
                args.node.name,
                args.timeout,
                report.summary()
            )))
        }
        Ok(Err(ControlError::Unreachable(_))) => {
            let report = probe::probe_all(&servers, &cookie).await;
            Err(CliError::Unreachable(format!(
                "{} is unreachable or runs no control process ({})",
                args.node.name,
                report.summary()
            )))
        }
        Ok(Err(e @ (ControlError::Refused(..) | ControlError::Unexpected(_)))) => {
            Err(CliError::Refused {
                node: args.node.name.clone(),
                reason: e.to_string(),
            })
        }
        Err(report) => Err(CliError::Unreachable(report.summary())),
    };
    node.stop();
    outcome
}

/// Prints `value` as one line of JSON.
fn print_json<T: serde::Serialize>(value: &T, what: &str) -> Result<(), CliError> {
    let json = serde_json::to_string(value).map_err(|e| CliError::Io {
        what: format!("encoding {what}"),
        source: e.into(),
    })?;
    output::line(&json).map_err(CliError::io("writing stdout"))
}

/// The request a command stands for; bare names in `allow` get the target's host.
pub fn request_for(command: CtlCommand, target: &Endpoint) -> Result<ControlRequest, CliError> {
    Ok(match command {
        CtlCommand::Deaf => ControlRequest::Deaf,
        CtlCommand::Listen => ControlRequest::Listen,
        CtlCommand::Reliable => ControlRequest::Reliable,
        CtlCommand::Unreliable {
            probability,
            model: LossModel::Boundary,
        } => ControlRequest::Unreliable(probability.unwrap_or(DEFAULT_LOSS)),
        CtlCommand::Unreliable {
            probability: Some(_),
            model: LossModel::Mit,
        } => {
            return Err(CliError::BadInput(
                "the mit model has fixed rates (10 % of requests, 20 % of replies): give no P"
                    .into(),
            ));
        }
        CtlCommand::Unreliable { probability, model } => ControlRequest::UnreliableModel {
            model,
            probability: probability.unwrap_or(DEFAULT_LOSS),
        },
        CtlCommand::Allow { names } => {
            let host = endpoints::host_of(&target.name);
            ControlRequest::Allow(names.iter().map(|n| endpoints::qualify(n, host)).collect())
        }
        CtlCommand::AllowAll => ControlRequest::AllowAll,
        CtlCommand::Status => ControlRequest::Status,
        CtlCommand::Kill { process } => ControlRequest::Kill(process),
        CtlCommand::Paxos(query) => ControlRequest::Paxos(match query {
            PaxosCommand::Status { seq } => PaxosQuery::Status(seq),
            PaxosCommand::Max => PaxosQuery::Max,
            PaxosCommand::Min => PaxosQuery::Min,
            PaxosCommand::Messages => PaxosQuery::Messages,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_qualifies_bare_names_with_the_targets_host() {
        let target = Endpoint::loopback("s1@10.0.0.1", 7101);
        let request = request_for(
            CtlCommand::Allow {
                names: vec!["s1".into(), "s2@other".into()],
            },
            &target,
        );
        assert_eq!(
            request.ok(),
            Some(ControlRequest::Allow(vec![
                "s1@10.0.0.1".into(),
                "s2@other".into()
            ]))
        );
    }

    #[test]
    fn unreliable_picks_its_model_and_mit_takes_no_probability() {
        let target = Endpoint::loopback("s1@h", 7101);
        let unreliable = |probability, model| {
            request_for(CtlCommand::Unreliable { probability, model }, &target)
        };
        assert_eq!(
            unreliable(None, LossModel::Boundary).ok(),
            Some(ControlRequest::Unreliable(0.2))
        );
        assert_eq!(
            unreliable(Some(0.3), LossModel::Original).ok(),
            Some(ControlRequest::UnreliableModel {
                model: LossModel::Original,
                probability: 0.3
            })
        );
        assert!(unreliable(None, LossModel::Mit).is_ok());
        assert!(matches!(
            unreliable(Some(0.3), LossModel::Mit),
            Err(CliError::BadInput(_))
        ));
    }
}
