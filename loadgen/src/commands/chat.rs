//! `loadgen chat`: delivery latency against grpc-stress's chat service.

use crate::chat::{ChatPlan, run};
use crate::cli::ChatArgs;
use crate::exit;

pub async fn chat(args: ChatArgs) -> u8 {
    loadlab_telemetry::init_logging(loadlab_telemetry::LogFormat::Human);
    if let Some(dir) = &args.out
        && let Err(error) = crate::run::prepare_out(dir)
    {
        eprintln!("loadgen: {error}");
        return exit::USAGE;
    }
    let trust = loadlab_proto::connect::TrustOptions {
        ca: args.ca.clone(),
        system_roots: false,
        no_server_validation: args.insecure,
    };
    let target = match loadlab_proto::connect::Target::new(&args.target, &trust) {
        Ok(target) => target,
        Err(error) => {
            eprintln!("loadgen: --target: {error}");
            return exit::USAGE;
        }
    };
    let plan = ChatPlan {
        conversations: args.conversations,
        members: args.members,
        duration: args.duration,
        send_interval: args.send_interval,
        connections: args.connections,
    };
    let stop = crate::stop::on_signals(args.grace);
    let report = match run(&target, &plan, &stop).await {
        Ok(report) => report,
        Err(error) => {
            eprintln!("loadgen: {error}");
            return exit::INTERRUPTED;
        }
    };
    let json = serde_json::to_string_pretty(&report).unwrap_or_default();
    println!("{json}");
    if let Some(dir) = &args.out
        && let Err(error) = std::fs::write(dir.join("chat.json"), &json)
    {
        eprintln!("loadgen: writing {}: {error}", dir.display());
    }
    if report.interrupted || report.sent == 0 {
        exit::INTERRUPTED
    } else if report.lost > 0 || report.duplicated > 0 {
        exit::THRESHOLD
    } else {
        exit::HELD
    }
}
