//! This machine and this host, as runs are keyed and claims are owned.

use crate::probe::HwCounters;
use syncbench_model::records::Machine;

/// This machine, as results are keyed by it.
pub fn detect_machine() -> Machine {
    let mut sys = sysinfo::System::new();
    sys.refresh_cpu_all();
    sys.refresh_memory();
    let cpu = sys
        .cpus()
        .first()
        .map(|c| c.brand().trim().to_owned())
        .unwrap_or_else(|| "unknown cpu".into());
    Machine {
        cpu,
        cores: sys.cpus().len() as u32,
        memory_bytes: sys.total_memory(),
        os: sysinfo::System::long_os_version().unwrap_or_else(|| "unknown os".into()),
        kernel: sysinfo::System::kernel_version().unwrap_or_else(|| "unknown kernel".into()),
        hw_counters: match HwCounters::availability() {
            Ok(()) => "available".into(),
            Err(e) => format!("unavailable: {e}"),
        },
        tag: None,
    }
}

/// `rustc --version`, for the record.
pub fn toolchain() -> String {
    toolchain_named(None)
}

/// `rustc +T --version` (rustup's toolchain `T`), or the default's.
pub fn toolchain_named(t: Option<&str>) -> String {
    let mut cmd = syncbench_model::secrets::command("rustc");
    if let Some(t) = t {
        cmd.arg(format!("+{t}"));
    }
    cmd.arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

/// This host's name (the kernel's), for naming the owner of a claim.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}
