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
    /// (with port 0 the system picks a free port; scripts read this line),
    /// followed by `, services on http://ADDR` when the services listener
    /// is enabled.
    Serve {
        /// Directory holding accounts.sqlite, one database per user, and
        /// the users' blobs.
        #[arg(long, env = "SYNC_SERVER_DATA")]
        data: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Also serve the services API (mail delivery by a mail exchanger)
        /// on this address; needs --service-token.
        #[arg(long, env = "SYNC_SERVICES_LISTEN", requires = "service_token")]
        services_listen: Option<SocketAddr>,
        /// The token mail exchangers present on the services listener.
        #[arg(long, env = "SYNC_SERVICE_TOKEN", hide_env_values = true)]
        service_token: Option<String>,
        /// Total size of one user's blobs (e.g. 64GiB, 10MiB).
        #[arg(long, value_parser = bytes, default_value = "64GiB")]
        quota: u64,
        /// Largest blob.
        #[arg(long, value_parser = bytes, default_value = "16GiB")]
        max_blob: u64,
        /// Largest message a mail exchanger may deliver.
        #[arg(long, value_parser = bytes, default_value = "64MiB")]
        max_incoming: u64,
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
        Command::Serve {
            data,
            listen,
            services_listen,
            service_token,
            quota,
            max_blob,
            max_incoming,
        } => {
            let limits = protocol::Limits {
                quota_bytes: quota,
                max_blob_bytes: max_blob,
                max_incoming_bytes: max_incoming,
                ..Default::default()
            };
            let services = services_listen.zip(service_token);
            serve(data, listen, services, limits)
        }
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

fn bytes(s: &str) -> Result<u64, String> {
    protocol::driver::parse_bytes(s)
}

fn serve(
    data: PathBuf,
    listen: SocketAddr,
    services: Option<(SocketAddr, String)>,
    limits: protocol::Limits,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let state = server::AppState::open(&data, limits)
            .with_context(|| format!("opening data directory {}", data.display()))?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let addr = listener.local_addr()?;
        let services = match services {
            Some((at, token)) => {
                let l = tokio::net::TcpListener::bind(at)
                    .await
                    .with_context(|| format!("binding the services listener {at}"))?;
                Some((l, token))
            }
            None => None,
        };
        let mut line = format!("listening on http://{addr}");
        if let Some((l, _)) = &services {
            line += &format!(", services on http://{}", l.local_addr()?);
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
        drop(out);
        tracing::info!(%addr, data = %data.display(), "serving");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = move |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        });
        let users = server::serve(listener, state.clone(), stopped(stop_rx.clone()));
        match services {
            Some((l, token)) => {
                let services = server::serve_services(l, state, &token, stopped(stop_rx));
                tokio::try_join!(users, services)?;
            }
            None => users.await?,
        }
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
