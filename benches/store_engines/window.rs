//! A timed window's CPU accounting: this process, the PostgreSQL cluster's processes, the whole
//! machine.

use std::time::Instant;

use kms_pam_benches::cpu::{cpu_seconds, machine_busy_seconds};
use kms_pam_benches::pg::cluster_pids;

use super::Reading;

/// CPU readings at the start of a timed window: this process, the PostgreSQL cluster's
/// processes, the whole machine.
pub(crate) struct Window {
    postmaster: u32,
    started: Instant,
    bench: f64,
    machine: f64,
    pg: Vec<(u32, f64)>,
}

impl Window {
    pub(crate) fn open(postmaster: u32) -> anyhow::Result<Self> {
        Ok(Self {
            postmaster,
            pg: pg_cpu(postmaster),
            bench: cpu_seconds(std::process::id())?,
            machine: machine_busy_seconds()?,
            started: Instant::now(),
        })
    }

    /// `count` things done since [`Window::open`]: the rate and the cores each side used.
    pub(crate) fn close(self, count: usize) -> anyhow::Result<Reading> {
        let wall = self.started.elapsed().as_secs_f64().max(f64::EPSILON);
        let bench = (cpu_seconds(std::process::id())? - self.bench) / wall;
        let machine = (machine_busy_seconds()? - self.machine) / wall;
        let pg: f64 = pg_cpu(self.postmaster)
            .iter()
            .filter_map(|(pid, t)| {
                let before = self.pg.iter().find(|(p, _)| p == pid)?;
                Some(t - before.1)
            })
            .sum::<f64>()
            / wall;
        Ok(Reading {
            per_second: count as f64 / wall,
            bench_cores: bench,
            pg_cores: pg,
            others: (machine - bench - pg).max(0.0),
        })
    }
}

fn pg_cpu(postmaster: u32) -> Vec<(u32, f64)> {
    cluster_pids(postmaster)
        .into_iter()
        .filter_map(|pid| cpu_seconds(pid).ok().map(|t| (pid, t)))
        .collect()
}
