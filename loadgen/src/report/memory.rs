//! The watched processes' resident memory, from the sampler's readings ([`crate::rss`]):
//! per process its peak, its last value and every sample, and per window the value at the
//! window's end. Pure: no I/O.

use std::collections::BTreeMap;

use super::{ProcessMemory, RssSample};
use crate::rss::MemoryLog;
use crate::stats;

/// Each watched process's memory over the run, in name order.
pub(super) fn processes(log: &MemoryLog) -> Vec<ProcessMemory> {
    let mut processes: Vec<ProcessMemory> = log
        .processes
        .iter()
        .enumerate()
        .map(|(index, watched)| {
            let samples: Vec<RssSample> = log
                .samples
                .iter()
                .filter(|sample| sample.process == index)
                .map(|sample| RssSample {
                    at_ms: u64::try_from(sample.at.as_millis()).unwrap_or(u64::MAX),
                    rss_bytes: sample.rss_bytes,
                })
                .collect();
            ProcessMemory {
                name: watched.name.clone(),
                pid: watched.pid,
                peak_bytes: samples.iter().map(|sample| sample.rss_bytes).max(),
                last_bytes: samples.last().map(|sample| sample.rss_bytes),
                samples,
            }
        })
        .collect();
    processes.sort_by(|a, b| a.name.cmp(&b.name).then(a.pid.cmp(&b.pid)));
    processes
}

/// For each of `count` windows of `width_secs`, each process's last sample in it (samples
/// past the last window count in the last one), by name.
pub(super) fn at_window_ends(
    log: &MemoryLog,
    width_secs: f64,
    count: usize,
) -> Vec<BTreeMap<String, u64>> {
    let mut ends = vec![BTreeMap::new(); count.max(1)];
    let last = ends.len() - 1;
    // Samples are in time order: a later one in the same window replaces an earlier one.
    for sample in &log.samples {
        let window = stats::bucket_of(sample.at.as_secs_f64(), width_secs).min(last);
        if let (Some(end), Some(watched)) =
            (ends.get_mut(window), log.processes.get(sample.process))
        {
            end.insert(watched.name.clone(), sample.rss_bytes);
        }
    }
    ends
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::time::Duration;

    use super::*;
    use crate::rss::{Sample, Watched};

    const MIB: u64 = 1024 * 1024;

    fn log() -> MemoryLog {
        let watched = |name: &str, pid| Watched {
            name: name.to_owned(),
            pid,
        };
        let sample = |secs: f64, process, mib: u64| Sample {
            at: Duration::from_secs_f64(secs),
            process,
            rss_bytes: mib * MIB,
        };
        MemoryLog {
            processes: vec![watched("payment-svc", 20), watched("order-svc", 10)],
            samples: vec![
                sample(0.0, 0, 30),
                sample(0.0, 1, 40),
                sample(1.0, 0, 35),
                sample(1.0, 1, 48),
                sample(2.0, 0, 33),
                // order-svc went away after 1 s.
                sample(3.0, 0, 31),
            ],
            warnings: Vec::new(),
        }
    }

    #[test]
    fn each_process_has_its_peak_last_and_samples() {
        let watched = processes(&log());
        let summary: Vec<_> = watched
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.pid,
                    p.peak_bytes.map(|b| b / MIB),
                    p.last_bytes.map(|b| b / MIB),
                    p.samples.len(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("order-svc", 10, Some(48), Some(48), 2),
                ("payment-svc", 20, Some(35), Some(31), 4),
            ]
        );
        assert_eq!(watched[1].samples[2].at_ms, 2_000);
        let never = MemoryLog {
            processes: vec![Watched {
                name: "x".into(),
                pid: 1,
            }],
            ..MemoryLog::default()
        };
        let never = processes(&never);
        assert_eq!((never[0].peak_bytes, never[0].last_bytes), (None, None));
    }

    #[test]
    fn a_window_shows_the_last_sample_in_it() {
        let ends = at_window_ends(&log(), 2.0, 2);
        let in_mib = |window: &BTreeMap<String, u64>| -> Vec<(String, u64)> {
            window
                .iter()
                .map(|(name, bytes)| (name.clone(), bytes / MIB))
                .collect()
        };
        assert_eq!(
            in_mib(&ends[0]),
            vec![("order-svc".into(), 48), ("payment-svc".into(), 35)]
        );
        assert_eq!(in_mib(&ends[1]), vec![("payment-svc".into(), 31)]);
        assert_eq!(at_window_ends(&MemoryLog::default(), 60.0, 3).len(), 3);
    }
}
