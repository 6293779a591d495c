//! `paxoskv ctl`: one control request (a fault, its undoing, status, or a process kill)
//! sent to a node's control process `node_ctl`, as control traffic that faults never
//! drop.

use crate::cli::args::{CtlArgs, CtlCommand};
use crate::cli::endpoints::{self, Endpoint};
use crate::cli::error::CliError;
use crate::cli::{connect, cookie, output, probe};
use kv_app::control::{self, ControlError, ControlReply, ControlRequest};
use runtime::NodeName;

/// Runs the command.
pub async fn run(args: CtlArgs) -> Result<(), CliError> {
    let request = request_for(args.command, &args.node);
    let cookie = cookie::from_args(&args.cookie)?;
    connect::use_tls(&args.tls)?;
    let servers = [args.node.clone()];
    let node = connect::client_node(&cookie, &servers).await?;
    let target = NodeName::new(&args.node.name);
    let call = control::call(&node, &target, request, args.timeout);
    let answer = probe::unless_refused(call, &servers, &cookie).await;
    let outcome = match answer {
        Ok(Ok(ControlReply::Done)) => output::line("ok").map_err(CliError::io("writing stdout")),
        Ok(Ok(ControlReply::Status(status))) => {
            let json = serde_json::to_string(&status).map_err(|e| CliError::Io {
                what: "encoding the status".into(),
                source: e.into(),
            })?;
            output::line(&json).map_err(CliError::io("writing stdout"))
        }
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
        Err(report) => Err(CliError::Unreachable(report.summary())),
    };
    node.stop();
    outcome
}

/// The request a command stands for; bare names in `allow` get the target's host.
pub fn request_for(command: CtlCommand, target: &Endpoint) -> ControlRequest {
    match command {
        CtlCommand::Deaf => ControlRequest::Deaf,
        CtlCommand::Listen => ControlRequest::Listen,
        CtlCommand::Reliable => ControlRequest::Reliable,
        CtlCommand::Unreliable { probability } => ControlRequest::Unreliable(probability),
        CtlCommand::Allow { names } => {
            let host = endpoints::host_of(&target.name);
            ControlRequest::Allow(names.iter().map(|n| endpoints::qualify(n, host)).collect())
        }
        CtlCommand::AllowAll => ControlRequest::AllowAll,
        CtlCommand::Status => ControlRequest::Status,
        CtlCommand::Kill { process } => ControlRequest::Kill(process),
    }
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
            request,
            ControlRequest::Allow(vec!["s1@10.0.0.1".into(), "s2@other".into()])
        );
    }
}
