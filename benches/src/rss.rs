//! Resident memory of a process, from `/proc/PID/status` (Linux).

use std::io;

use anyhow::Context as _;
use serde::Serialize;

/// A process's resident set, in KiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Rss {
    /// `VmRSS`: resident now.
    pub now_kb: u64,
    /// `VmHWM`: the peak since start, or since the last [`reset_peak`].
    pub peak_kb: u64,
}

impl Rss {
    /// The peak in MiB, for tables.
    pub fn peak_mib(&self) -> f64 {
        kib_to_mib(self.peak_kb)
    }

    /// The current resident set in MiB, for tables.
    pub fn now_mib(&self) -> f64 {
        kib_to_mib(self.now_kb)
    }
}

/// KiB to MiB.
pub fn kib_to_mib(kib: u64) -> f64 {
    // Exact for any memory size a process can have.
    kib as f64 / 1024.0
}

/// Reads `VmRSS` and `VmHWM` of process `pid`.
pub fn read(pid: u32) -> anyhow::Result<Rss> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    parse(&status).with_context(|| format!("no VmRSS/VmHWM in /proc/{pid}/status"))
}

/// Resets the peak (`VmHWM`) to the current resident set, so that the peak of one phase of a
/// benchmark can be read on its own (`echo 5 > /proc/PID/clear_refs`, Linux 4.0+).
pub fn reset_peak(pid: u32) -> io::Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), b"5")
}

fn parse(status: &str) -> Option<Rss> {
    let field = |name: &str| {
        status.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            rest.trim().strip_suffix("kB")?.trim().parse().ok()
        })
    };
    Some(Rss {
        now_kb: field("VmRSS")?,
        peak_kb: field("VmHWM")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status() {
        let status = "Name:\tx\nVmHWM:\t    4096 kB\nVmRSS:\t    2048 kB\nThreads:\t3\n";
        let rss = parse(status).unwrap();
        assert_eq!(
            rss,
            Rss {
                now_kb: 2048,
                peak_kb: 4096
            }
        );
        assert!(parse("Name:\tx\n").is_none());
    }

    #[test]
    fn reads_and_resets_this_process() {
        let me = std::process::id();
        let rss = read(me).unwrap();
        assert!(rss.now_kb > 0 && rss.peak_kb >= rss.now_kb);
        reset_peak(me).unwrap();
    }
}
