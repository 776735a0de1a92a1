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

/// What else a result depends on, where readable (see
/// `RunRecord::environment`): a hash of the `Cargo.lock` at `lock` as
/// built, and the CPU's frequency governor and driver (absent in many
/// VMs, as on the machine this was written on).
pub fn environment(lock: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    let mut env = std::collections::BTreeMap::new();
    if let Ok(bytes) = std::fs::read(lock) {
        let h = syncbench_model::hash::hash_words(&bytes);
        env.insert("cargo_lock".to_owned(), format!("{h:016x}"));
    }
    let cpufreq = std::path::Path::new("/sys/devices/system/cpu/cpu0/cpufreq");
    for (key, file) in [
        ("governor", "scaling_governor"),
        ("cpufreq_driver", "scaling_driver"),
    ] {
        if let Ok(v) = std::fs::read_to_string(cpufreq.join(file)) {
            env.insert(key.to_owned(), v.trim().to_owned());
        }
    }
    env
}

/// This host's name (the kernel's), for naming the owner of a claim.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}
