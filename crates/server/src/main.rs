use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

// The allocator, chosen at build time (a variant to measure): glibc's
// malloc unless a feature names another.
#[cfg(all(feature = "mimalloc", feature = "jemalloc"))]
compile_error!("the features `mimalloc` and `jemalloc` each choose the allocator: enable one");
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// `--version`: the package's, the allocator this binary was built with,
/// and how it writes blob files.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (allocator: ",
    allocator!(),
    "; blob writes: ",
    blob_writes!(),
    ")"
);

#[cfg(feature = "mimalloc")]
macro_rules! allocator {
    () => {
        "mimalloc"
    };
}
#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
macro_rules! allocator {
    () => {
        "jemalloc"
    };
}
#[cfg(not(any(feature = "mimalloc", feature = "jemalloc")))]
macro_rules! allocator {
    () => {
        "glibc"
    };
}
#[cfg(feature = "io-uring")]
macro_rules! blob_writes {
    () => {
        "io_uring where the kernel allows"
    };
}
#[cfg(not(feature = "io-uring"))]
macro_rules! blob_writes {
    () => {
        "blocking pool"
    };
}
use {allocator, blob_writes};

/// The reference sync server: stores users' encrypted documents and syncs
/// them between devices. It never sees plaintext.
#[derive(Parser)]
#[command(version = VERSION)]
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
        #[command(flatten)]
        scale: Scale,
    },
    /// Manage accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

/// How the server uses the machine: its async runtime, and how many
/// processes share the port.
#[derive(clap::Args, Clone, Debug)]
struct Scale {
    /// tokio runtime: multi-thread (tasks stolen between --threads
    /// workers) or current-thread (everything on one thread per process).
    #[arg(long, value_enum, default_value = "multi-thread")]
    runtime: Runtime,
    /// Worker threads of the multi-thread runtime [default: one per core].
    #[arg(long)]
    threads: Option<usize>,
    /// Processes serving the same port (SO_REUSEPORT: the kernel spreads
    /// connections over them). With more than one, this process starts and
    /// supervises them and serves nothing itself.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// One of a supervisor's workers (internal): binds with SO_REUSEPORT
    /// and shuts down when its standard input closes.
    #[arg(long, hide = true)]
    worker: bool,
    /// Seconds a connection may go without sending a complete request
    /// head (connected but silent, or idle between kept-alive requests)
    /// before the server closes it.
    #[arg(long, env = "SYNC_IDLE_TIMEOUT", value_name = "SECONDS", default_value_t = server::DEFAULT_IDLE_TIMEOUT.as_secs_f64(), value_parser = seconds)]
    idle_timeout: f64,
}

fn seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Runtime {
    MultiThread,
    CurrentThread,
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

/// glibc's malloc raises its mmap threshold after large blocks are freed,
/// so the next large buffers come from its arenas and stay there: RSS
/// 64 MiB after three 24 MiB sync frames, 11 MiB before. A fixed 4 MiB
/// threshold maps every large buffer and returns it when freed (RSS back
/// to 13 MiB; 1 MiB download chunks stay below it). glibc reads the
/// setting only at process start, so `serve` executes itself again once
/// with it in the environment (which workers inherit); elsewhere the
/// variable is ignored. Measured in the closing note of the hardening
/// issue (mimalloc, tried instead, peaked higher and kept more).
fn with_malloc_settings() {
    // Another allocator reads no glibc tunables.
    if cfg!(any(feature = "mimalloc", feature = "jemalloc")) {
        return;
    }
    const TUNABLE: &str = "glibc.malloc.mmap_threshold=4194304";
    // Set for the executed image: once only, even where glibc drops
    // GLIBC_TUNABLES (setuid or file capabilities).
    const DONE: &str = "SYNC_SERVER_MALLOC_SET";
    if std::env::args_os().nth(1).is_none_or(|a| a != "serve") || std::env::var_os(DONE).is_some() {
        return;
    }
    let current = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    if current.contains("glibc.malloc.mmap_threshold") {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let value = if current.is_empty() {
        TUNABLE.to_owned()
    } else {
        format!("{current}:{TUNABLE}")
    };
    use std::os::unix::process::CommandExt;
    let e = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("GLIBC_TUNABLES", value)
        .env(DONE, "1")
        .exec();
    // exec returns only when it failed: serve on with glibc's defaults.
    eprintln!("sync-server: note: could not apply the malloc settings ({e}); serving without them");
}

fn main() -> std::process::ExitCode {
    with_malloc_settings();
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
            scale,
        } => {
            let limits = protocol::Limits {
                quota_bytes: quota,
                max_blob_bytes: max_blob,
                max_incoming_bytes: max_incoming,
                ..Default::default()
            };
            let services = services_listen.zip(service_token);
            if scale.workers > 1 && !scale.worker {
                supervise(data, listen, services, limits, scale)
            } else {
                serve(data, listen, services, limits, scale)
            }
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

/// Binds a listening socket; workers share theirs with SO_REUSEPORT.
fn bind(addr: SocketAddr, reuse_port: bool) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(reuse_port)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

fn runtime(scale: &Scale) -> std::io::Result<tokio::runtime::Runtime> {
    match scale.runtime {
        Runtime::MultiThread => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = scale.threads {
                b.worker_threads(n.max(1));
            }
            b.enable_all().build()
        }
        Runtime::CurrentThread => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    }
}

fn serve(
    data: PathBuf,
    listen: SocketAddr,
    services: Option<(SocketAddr, String)>,
    limits: protocol::Limits,
    scale: Scale,
) -> anyhow::Result<()> {
    if cfg!(feature = "io-uring") && !scale.worker {
        // Built for io_uring: say when the kernel refuses it (a benchmark
        // of this build would otherwise measure the other design unawares).
        let how = server::blob_io::describe();
        if how != "io_uring" {
            tracing::warn!("blob writes: {how}");
        }
    }
    if !scale.worker {
        server::AppState::clean_tmp(&data)
            .with_context(|| format!("preparing data directory {}", data.display()))?;
    }
    runtime(&scale)?.block_on(async {
        let state = server::AppState::open(&data, limits)
            .with_context(|| format!("opening data directory {}", data.display()))?;
        let listener = bind(listen, scale.worker).with_context(|| format!("binding {listen}"))?;
        let addr = listener.local_addr()?;
        let services = match services {
            Some((at, token)) => {
                let l = bind(at, scale.worker)
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
        tracing::info!(%addr, data = %data.display(), ?scale, "serving");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = move |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let worker = scale.worker;
        let idle_timeout = std::time::Duration::from_secs_f64(scale.idle_timeout);
        tokio::spawn(async move {
            if worker {
                // The supervisor closes our stdin to stop us (or died).
                tokio::select! {
                    _ = shutdown_signal() => {}
                    _ = stdin_closed() => {}
                }
            } else {
                shutdown_signal().await;
            }
            let _ = stop_tx.send(true);
        });
        let users = server::serve(
            listener,
            state.clone(),
            idle_timeout,
            stopped(stop_rx.clone()),
        );
        match services {
            Some((l, token)) => {
                let services =
                    server::serve_services(l, state, &token, idle_timeout, stopped(stop_rx));
                tokio::try_join!(users, services)?;
            }
            None => users.await?,
        }
        tracing::info!("shut down cleanly");
        Ok(())
    })
}

async fn stdin_closed() {
    use tokio::io::AsyncReadExt;
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    while let Ok(n) = stdin.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

/// Reserves a port for the workers: bound with SO_REUSEPORT but not
/// listening, so the kernel routes no connection to it.
fn reserve(addr: SocketAddr) -> std::io::Result<tokio::net::TcpSocket> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

/// `--workers N`: starts N worker processes on one port (and one services
/// port), prints the usual first line once all listen, and on SIGTERM or
/// Ctrl-C closes their standard input so they shut down gracefully.
fn supervise(
    data: PathBuf,
    listen: SocketAddr,
    services: Option<(SocketAddr, String)>,
    limits: protocol::Limits,
    scale: Scale,
) -> anyhow::Result<()> {
    use std::io::BufRead;
    server::AppState::clean_tmp(&data)
        .with_context(|| format!("preparing data directory {}", data.display()))?;
    // Creates the databases once, before the workers race to.
    drop(server::AppState::open(&data, limits.clone())?);
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let _guard = control.enter();
    let main = reserve(listen).with_context(|| format!("binding {listen}"))?;
    let main_addr = main.local_addr()?;
    let svc = match &services {
        Some((at, _)) => Some(reserve(*at).with_context(|| format!("binding {at}"))?),
        None => None,
    };
    let svc_addr = svc.as_ref().map(|s| s.local_addr()).transpose()?;
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    let mut stdins = Vec::new();
    for _ in 0..scale.workers {
        let mut cmd = std::process::Command::new(&exe);
        cmd.arg("serve")
            .arg("--data")
            .arg(&data)
            .args(["--listen", &main_addr.to_string(), "--worker"])
            .args(["--quota", &limits.quota_bytes.to_string()])
            .args(["--max-blob", &limits.max_blob_bytes.to_string()])
            .args(["--max-incoming", &limits.max_incoming_bytes.to_string()])
            .args(["--idle-timeout", &scale.idle_timeout.to_string()])
            .args([
                "--runtime",
                match scale.runtime {
                    Runtime::MultiThread => "multi-thread",
                    Runtime::CurrentThread => "current-thread",
                },
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        if let Some(n) = scale.threads {
            cmd.args(["--threads", &n.to_string()]);
        }
        if let (Some(addr), Some((_, token))) = (svc_addr, &services) {
            cmd.args(["--services-listen", &addr.to_string()])
                .env("SYNC_SERVICE_TOKEN", token);
        }
        let mut child = cmd.spawn().context("starting a worker")?;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
        if !line.starts_with("listening on ") {
            let _ = child.kill();
            anyhow::bail!("a worker did not start (see its errors above)");
        }
        stdins.push(child.stdin.take().expect("piped"));
        children.push(child);
    }
    // Every worker listens: the reservations can go.
    drop((main, svc));
    let mut line = format!("listening on http://{main_addr}");
    if let Some(a) = svc_addr {
        line += &format!(", services on http://{a}");
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    drop(out);
    tracing::info!(workers = scale.workers, addr = %main_addr, "supervising");
    let stopping = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watch = stopping.clone();
    let waiter = std::thread::spawn(move || {
        for mut c in children {
            let status = c.wait();
            if !watch.load(std::sync::atomic::Ordering::SeqCst) {
                tracing::error!(pid = c.id(), ?status, "a worker exited");
            }
        }
        if !watch.load(std::sync::atomic::Ordering::SeqCst) {
            tracing::error!("every worker exited; stopping");
            std::process::exit(1);
        }
    });
    control.block_on(shutdown_signal());
    stopping.store(true, std::sync::atomic::Ordering::SeqCst);
    drop(stdins);
    let _ = waiter.join();
    tracing::info!("workers shut down");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
