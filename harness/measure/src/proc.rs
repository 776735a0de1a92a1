//! Child processes: each in its own process group, reaped with `wait4` so
//! the kernel's exact accounting (CPU user/system time, peak RSS) of the
//! process and its waited-for descendants comes with the exit status.
//!
//! std's `Child::wait` drops the rusage `wait4` returns, and no maintained
//! crate exposes `wait4` for a pid spawned by std, so this module makes the
//! two libc calls itself; it is the only unsafe code in the workspace.
#![allow(unsafe_code)]

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How a process ended, with what the kernel accounted to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Exit {
    /// Exit code, or `None` if a signal ended it.
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub user_s: f64,
    pub sys_s: f64,
    pub peak_rss_bytes: u64,
    /// The harness's own peak memory when it started the process: a
    /// child inherits it in `ru_maxrss` (the spawn's copy of the
    /// harness's address space counts until exec), so `peak_rss_bytes`
    /// is the child's own only when above this.
    pub inherited_rss_bytes: u64,
    /// The kernel's I/O accounting of the process (and the children it
    /// reaped), read after it exited and before it was reaped: exact.
    /// `None` where /proc/PID/io cannot be read.
    pub io: Option<crate::procfs::IoCounters>,
    pub at: Instant,
}

impl Exit {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    pub fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exit status {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            _ => "unknown status".into(),
        }
    }
}

/// A running child in its own process group; killed (the whole group)
/// when dropped unless it was reaped.
#[derive(Debug)]
pub struct Proc {
    pub pid: i32,
    pub started: Instant,
    exit: mpsc::Receiver<Exit>,
    reaped: Option<Exit>,
}

/// Makes `cmd` run on one CPU only (inherited by its children): a process
/// that migrates between the cores of a shared VM varies far more.
pub fn pin_to_cpu(cmd: &mut Command, cpu: usize) {
    // SAFETY: between fork and exec only async-signal-safe calls are
    // allowed; CPU_ZERO/CPU_SET touch a local and sched_setaffinity is a
    // plain system call.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_ZERO(&mut set);
            libc::CPU_SET(cpu, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Spawns `cmd` as the leader of a new process group.
pub fn spawn(cmd: &mut Command) -> std::io::Result<(Proc, Child)> {
    cmd.process_group(0);
    let inherited = crate::procfs::read_hwm(std::process::id() as i32).unwrap_or(u64::MAX);
    let child = cmd.spawn()?;
    let pid = child.id() as i32;
    let (tx, exit) = mpsc::channel();
    std::thread::spawn(move || {
        if let Some(e) = wait4(pid, inherited) {
            let _ = tx.send(e);
        }
    });
    Ok((
        Proc {
            pid,
            started: Instant::now(),
            exit,
            reaped: None,
        },
        child,
    ))
}

fn wait4(pid: i32, inherited_rss_bytes: u64) -> Option<Exit> {
    // Wait for the exit without reaping (WNOWAIT): the zombie's
    // /proc/PID/io still holds its final counters, gone once reaped.
    let exited = loop {
        // SAFETY: an all-zero siginfo_t is a valid value of this C struct.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: a valid pointer to a live local.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 {
            break true;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break false;
        }
    };
    // Only from a process that has exited: mid-run figures are not final.
    let io = exited.then(|| crate::procfs::read_io(pid)).flatten();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are to live locals of the right types.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        if r == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return None;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(Exit {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
        user_s: tv(usage.ru_utime),
        sys_s: tv(usage.ru_stime),
        // Linux reports ru_maxrss in KiB.
        peak_rss_bytes: usage.ru_maxrss as u64 * 1024,
        inherited_rss_bytes,
        io,
        at: Instant::now(),
    })
}

impl Proc {
    /// Waits until the process exits or `deadline` passes (`None`), or
    /// `interrupted()` turns true (checked every 50 ms, also `None`).
    pub fn wait_until(
        &mut self,
        deadline: Instant,
        interrupted: &dyn Fn() -> bool,
    ) -> Option<Exit> {
        if let Some(e) = &self.reaped {
            return Some(e.clone());
        }
        loop {
            let step = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(50));
            if interrupted() {
                return None;
            }
            match self.exit.recv_timeout(step) {
                Ok(e) => {
                    self.reaped = Some(e.clone());
                    return Some(e);
                }
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(_) => return None,
            }
        }
    }

    pub fn is_reaped(&self) -> bool {
        self.reaped.is_some()
    }

    /// Sends `signal` to the whole process group.
    pub fn signal_group(&self, signal: i32) {
        // SAFETY: killpg has no memory effects; a stale group is ESRCH.
        unsafe {
            libc::killpg(self.pid, signal);
        }
    }

    /// Asks the group to stop (SIGTERM), then kills it (SIGKILL) if it has
    /// not exited within `grace`; returns the exit either way.
    pub fn stop(&mut self, grace: Duration) -> Option<Exit> {
        if self.reaped.is_none() {
            self.signal_group(libc::SIGTERM);
            if self.wait_until(Instant::now() + grace, &|| false).is_none() {
                self.signal_group(libc::SIGKILL);
                self.wait_until(Instant::now() + Duration::from_secs(10), &|| false);
            }
        }
        // Leftover members of the group (a shell's background jobs) go too.
        self.signal_group(libc::SIGKILL);
        self.reaped.clone()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.signal_group(libc::SIGKILL);
    }
}

/// CPU seconds the calling thread has used (for the sampler's own cost).
pub fn thread_cpu_seconds() -> f64 {
    // SAFETY: as in wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a live local.
    unsafe {
        libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Whether a process with this pid is running (a zombie waiting to be
/// reaped by its new parent counts as ended).
/// Sends `signal` to one process.
pub fn signal(pid: i32, signal: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid, signal) };
}

pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').and_then(|i| s[i + 2..].chars().next()))
        .is_some_and(|state| !matches!(state, 'Z' | 'X'))
}

/// `sysconf(_SC_CLK_TCK)`: the unit of CPU times in /proc.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// `sysconf(_SC_PAGESIZE)`: the unit of RSS in /proc/PID/stat.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 } else { 4096 }
}

/// Makes this process's `/proc/PID/environ` and `/proc/PID/mem`
/// unreadable to the other processes of its user (`PR_SET_DUMPABLE` 0:
/// the kernel's ptrace check then asks for CAP_SYS_PTRACE): measured code
/// runs as the harness's user, and would otherwise read the credentials
/// `secrets::command` kept from its own environment in its parent's.
/// Children are dumpable again once they exec. Also: no core dumps of
/// the harness.
pub fn hide_from_other_processes() {
    // SAFETY: prctl with PR_SET_DUMPABLE takes plain integers and changes
    // only this process's flag.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}
