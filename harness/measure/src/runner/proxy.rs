//! A load-balancing proxy in front of several server processes: nginx
//! from the distribution, round-robin, started and measured by the harness
//! like any other process.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The nginx binary: on PATH, or where Debian puts it (root's PATH has
/// /usr/sbin, a user's often not).
pub fn nginx_binary() -> Result<PathBuf, String> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("nginx"));
    on_path
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "nginx is not installed: `apt-get install nginx-light` (the scenario's `setup` \
             does it when run as root)"
                .to_owned()
        })
}

/// A free port on 127.0.0.1. nginx cannot be told to pick one and report
/// it (as our servers do with port 0), so the port is found here and
/// handed over; another process could take it in between, in which case
/// nginx fails to start and says so.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// nginx's configuration: one listener per upstream group (the user API,
/// and the services API when the servers have it), round-robin over the
/// servers' addresses, kept-alive upstream connections, everything under
/// `dir` (pid, temp files, error log).
pub fn nginx_config(dir: &Path, groups: &[(u16, Vec<String>)], workers: usize) -> String {
    let d = dir.display();
    let mut http = String::new();
    for (i, (port, backends)) in groups.iter().enumerate() {
        let servers: String = backends
            .iter()
            .map(|b| format!("        server {b} max_fails=1 fail_timeout=2s;\n"))
            .collect();
        http += &format!(
            "    upstream group{i} {{\n{servers}        keepalive 256;\n    }}\n\
             \x20   server {{\n\
             \x20       listen 127.0.0.1:{port} reuseport backlog=4096;\n\
             \x20       location / {{\n\
             \x20           proxy_pass http://group{i};\n\
             \x20           proxy_http_version 1.1;\n\
             \x20           proxy_set_header Connection \"\";\n\
             \x20           proxy_set_header Host $host;\n\
             \x20           # A request whose server died is tried on the next one;\n\
             \x20           # every endpoint of ours is safe to repeat.\n\
             \x20           proxy_next_upstream error timeout http_502 non_idempotent;\n\
             \x20           proxy_next_upstream_tries 3;\n\
             \x20           proxy_connect_timeout 2s;\n\
             \x20           proxy_buffering off;\n\
             \x20       }}\n\
             \x20   }}\n"
        );
    }
    format!(
        "# Written by syncbench for one run.\n\
         daemon off;\n\
         master_process on;\n\
         worker_processes {workers};\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\n\
         events {{ worker_connections 8192; }}\n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   client_max_body_size 0;\n\
         \x20   client_body_buffer_size 1m;\n\
         \x20   client_body_temp_path {d}/body;\n\
         \x20   proxy_temp_path {d}/proxy;\n\
         \x20   fastcgi_temp_path {d}/fastcgi;\n\
         \x20   uwsgi_temp_path {d}/uwsgi;\n\
         \x20   scgi_temp_path {d}/scgi;\n\
         \x20   keepalive_requests 1000000;\n\
         {http}}}\n"
    )
}

/// Waits until something accepts connections on `addr`, or `deadline`.
/// nginx prints nothing when it is ready, so connecting is the only sign.
pub fn wait_listening(
    addr: SocketAddr,
    deadline: Instant,
    alive: &mut dyn FnMut() -> bool,
) -> Result<(), String> {
    let mut pause = Duration::from_millis(1);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if !alive() {
            return Err("nginx exited before it listened".into());
        }
        if Instant::now() >= deadline {
            return Err(format!("nginx did not listen on {addr} in time"));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lists_every_backend_and_retries_dead_ones() {
        let c = nginx_config(
            Path::new("/tmp/x"),
            &[
                (8080, vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()]),
                (8081, vec!["127.0.0.1:3".into()]),
            ],
            2,
        );
        assert!(c.contains("server 127.0.0.1:1 max_fails=1"));
        assert!(c.contains("server 127.0.0.1:2 max_fails=1"));
        assert!(c.contains("listen 127.0.0.1:8080"));
        assert!(c.contains("listen 127.0.0.1:8081"));
        assert!(c.contains("proxy_pass http://group1;"));
        assert!(c.contains("non_idempotent"));
        assert!(c.contains("pid /tmp/x/nginx.pid;"));
        assert_eq!(c.matches('{').count(), c.matches('}').count());
    }
}
