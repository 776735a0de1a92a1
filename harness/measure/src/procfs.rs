//! Readers of the kernel's accounts of a process in /proc that both the
//! process runner (`proc`) and the sampler (`probe`) use.

/// A process's peak resident memory so far (`VmHWM`).
pub fn read_hwm(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// A process's I/O as the kernel accounts it (/proc/PID/io): exact, and
/// the same for the same work whatever else the machine does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoCounters {
    /// Bytes passed to read-like calls (files, pipes, sockets alike).
    pub rchar: u64,
    /// Bytes passed to write-like calls.
    pub wchar: u64,
    /// Read-like system calls.
    pub syscr: u64,
    /// Write-like system calls.
    pub syscw: u64,
    /// Bytes fetched from storage (page-cache misses).
    pub read_bytes: u64,
    /// Bytes sent towards storage (dirtied pages; truncated writes count).
    pub write_bytes: u64,
}

impl IoCounters {
    /// The fields with their metric suffixes, in a fixed order.
    pub fn fields(&self) -> [(&'static str, u64); 6] {
        [
            ("io.rchar", self.rchar),
            ("io.wchar", self.wchar),
            ("io.syscr", self.syscr),
            ("io.syscw", self.syscw),
            ("io.read_bytes", self.read_bytes),
            ("io.write_bytes", self.write_bytes),
        ]
    }

    pub fn plus(&self, o: &IoCounters) -> IoCounters {
        IoCounters {
            rchar: self.rchar + o.rchar,
            wchar: self.wchar + o.wchar,
            syscr: self.syscr + o.syscr,
            syscw: self.syscw + o.syscw,
            read_bytes: self.read_bytes + o.read_bytes,
            write_bytes: self.write_bytes + o.write_bytes,
        }
    }

    /// What happened between `earlier` and `self`; `None` when a counter
    /// went backwards (another process under the same pid).
    pub fn since(&self, earlier: &IoCounters) -> Option<IoCounters> {
        Some(IoCounters {
            rchar: self.rchar.checked_sub(earlier.rchar)?,
            wchar: self.wchar.checked_sub(earlier.wchar)?,
            syscr: self.syscr.checked_sub(earlier.syscr)?,
            syscw: self.syscw.checked_sub(earlier.syscw)?,
            read_bytes: self.read_bytes.checked_sub(earlier.read_bytes)?,
            write_bytes: self.write_bytes.checked_sub(earlier.write_bytes)?,
        })
    }
}

/// /proc/PID/io of a process we may trace (our children).
pub fn read_io(pid: i32) -> Option<IoCounters> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))?
            .trim()
            .parse()
            .ok()
    };
    Some(IoCounters {
        rchar: field("rchar")?,
        wchar: field("wchar")?,
        syscr: field("syscr")?,
        syscw: field("syscw")?,
        read_bytes: field("read_bytes")?,
        write_bytes: field("write_bytes")?,
    })
}
