//! `fledge-loadtester`: Flagger's loadtester API (`fledge-loadtester -port=8080`), or the
//! built-in hey on its own (`fledge-loadtester hey -z 10s -c 50 http://host/`).

use std::process::ExitCode;

use fledge_loadtester::config::USAGE;
use fledge_loadtester::goflag::FlagError;
use fledge_loadtester::{Config, ConfigError, Generator, LoadTester, logging};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("fledge-loadtester: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    if args.first().is_some_and(|first| first == "hey") {
        return runtime.block_on(hey(&args[1..]));
    }
    let config = match Config::from_args(&args) {
        Ok(config) => config,
        Err(ConfigError::Flags(FlagError::Help)) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("fledge-loadtester: {error}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    logging::install(config.log_level, config.console_logs, std::io::stdout);
    runtime.block_on(async move {
        let loadtester = match LoadTester::start(config.clone()).await {
            Ok(loadtester) => loadtester,
            Err(error) => {
                tracing::error!(
                    "HTTP server crashed: cannot listen on {}: {error} (-port)",
                    config.address
                );
                return ExitCode::FAILURE;
            }
        };
        shutdown_signal().await;
        loadtester.stop().await;
        ExitCode::SUCCESS
    })
}

/// `fledge-loadtester hey ...`: hey's command line, hey's summary on stdout.
async fn hey(args: &[String]) -> ExitCode {
    let generator = match Generator::from_command_line(args) {
        Ok(generator) => generator,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let stop = generator.stop_handle();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            stop.stop();
        }
    });
    let report = generator.run().await;
    print!("{}", report.summary());
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
