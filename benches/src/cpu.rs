//! CPU time of processes, from `/proc/PID/stat` (Linux): how many cores each process of a path
//! kept busy during a phase, which tells whether the machine, not a stall, bounds the result.

use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;

/// Clock ticks per second of `/proc/PID/stat` times (`USER_HZ`): 100 on every Linux ABI that
/// matters here, and the crate has no libc binding to ask `sysconf`.
const TICKS_PER_SECOND: f64 = 100.0;

/// How busy one process was during a phase.
#[derive(Clone, Debug, Serialize)]
pub struct CpuShare {
    /// Who.
    pub role: &'static str,
    /// CPU seconds per wall-clock second (1.0 = one core fully busy).
    pub cores: f64,
}

/// CPU seconds (user + system) that process `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    parse_stat(&stat).with_context(|| format!("unexpected /proc/{pid}/stat"))
}

fn parse_stat(stat: &str) -> Option<f64> {
    // The command name is in parentheses and may hold spaces: count fields after the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    // After the name: state (field 3) ... utime (14), stime (15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

/// CPU seconds the whole machine has spent busy (not idle, not waiting on I/O) so far.
pub fn machine_busy_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("read /proc/stat")?;
    parse_machine(&stat).context("unexpected /proc/stat")
}

fn parse_machine(stat: &str) -> Option<f64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal ...: all but idle and iowait are busy.
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    Some(busy as f64 / TICKS_PER_SECOND)
}

/// The role under which [`CpuSampler`] reports what other processes used: on a shared machine
/// it tells how much the readings were disturbed.
pub const OTHERS: &str = "others";

/// CPU readings of several processes at the start of a phase.
#[derive(Debug)]
pub struct CpuSampler {
    started: Instant,
    before: Vec<(&'static str, u32, f64)>,
    machine_before: f64,
}

impl CpuSampler {
    /// Reads the CPU time of each `(role, pid)` now.
    pub fn start(procs: &[(&'static str, u32)]) -> anyhow::Result<Self> {
        let before = procs
            .iter()
            .map(|&(role, pid)| Ok((role, pid, cpu_seconds(pid)?)))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            started: Instant::now(),
            before,
            machine_before: machine_busy_seconds()?,
        })
    }

    /// How many cores each process kept busy since [`CpuSampler::start`], followed by what
    /// every other process on the machine used ([`OTHERS`]).
    pub fn finish(self) -> anyhow::Result<Vec<CpuShare>> {
        let wall = self.started.elapsed().as_secs_f64().max(f64::EPSILON);
        let machine = (machine_busy_seconds()? - self.machine_before) / wall;
        let mut shares = self
            .before
            .into_iter()
            .map(|(role, pid, before)| {
                let cores = (cpu_seconds(pid)? - before) / wall;
                Ok(CpuShare { role, cores })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let ours: f64 = shares.iter().map(|s| s.cores).sum();
        shares.push(CpuShare {
            role: OTHERS,
            cores: (machine - ours).max(0.0),
        });
        Ok(shares)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let stat = "42 (bench node) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1 0 0";
        assert_eq!(parse_stat(stat), Some(3.0));
        assert!(parse_stat("42 (x) S 1").is_none());
    }

    #[test]
    fn machine_busy_time_leaves_out_idle_and_iowait() {
        let stat = "cpu  100 0 50 1000 30 5 5 10 0 0\ncpu0 1 2 3\n";
        assert_eq!(parse_machine(stat), Some(1.7));
        assert!(parse_machine("intr 1 2\n").is_none());
    }

    #[test]
    fn this_process_uses_cpu() {
        let me = std::process::id();
        let sampler = CpuSampler::start(&[("me", me)]).unwrap();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        let shares = sampler.finish().unwrap();
        assert_eq!(shares[0].role, "me");
        assert_eq!(shares[1].role, OTHERS);
        assert!(shares[0].cores >= 0.0);
        assert!(cpu_seconds(me).unwrap() >= 0.0);
    }
}
