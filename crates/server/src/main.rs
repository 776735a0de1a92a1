use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The reference sync server: stores users' encrypted documents and syncs
/// them between devices. It never sees plaintext.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API until SIGTERM or Ctrl-C.
    ///
    /// Prints `listening on http://ADDR` on stdout once the socket is bound
    /// (with port 0 the system picks a free port; scripts read this line).
    Serve {
        /// Directory holding accounts.sqlite and one database per user.
        #[arg(long, env = "SYNC_SERVER_DATA")]
        data: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// Manage accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account; prints its user id and bearer token (shown only once).
    Add {
        name: String,
        #[arg(long, env = "SYNC_SERVER_DATA")]
        data: PathBuf,
        /// Print `{"name","user_id","token"}` as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sync-server: error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { data, listen } => serve(data, listen),
        Command::User {
            command: UserCommand::Add { name, data, json },
        } => {
            let state = server::AppState::open(&data, Default::default())
                .with_context(|| format!("opening data directory {}", data.display()))?;
            let user = state.add_user(&name)?;
            if json {
                println!("{}", serde_json::to_string(&user)?);
            } else {
                println!("user_id: {}\ntoken: {}", user.user_id, user.token);
            }
            Ok(())
        }
    }
}

fn serve(data: PathBuf, listen: SocketAddr) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let state = server::AppState::open(&data, Default::default())
            .with_context(|| format!("opening data directory {}", data.display()))?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let addr = listener.local_addr()?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}")?;
        out.flush()?;
        drop(out);
        tracing::info!(%addr, data = %data.display(), "serving");
        server::serve(listener, state, shutdown_signal()).await?;
        tracing::info!("shut down cleanly");
        Ok(())
    })
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
