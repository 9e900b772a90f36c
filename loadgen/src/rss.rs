//! Resident memory of the system under test: which processes to watch (named on the command
//! line, or by the `<name>.pid` files of a directory, as `scripts/run-local.sh` writes them) and
//! their `VmRSS`, read from `/proc/<pid>/status` once a second while the run lasts (Linux).
//!
//! This module does the I/O; the report aggregates the samples (peak, last, per window).
//! Memory that cannot be read is a warning in the report, never a failed run: without `/proc`
//! there is simply no memory to report.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::Error;

/// How often the watched processes' memory is read.
pub const SAMPLE_PERIOD: Duration = Duration::from_secs(1);

/// A process whose resident memory is sampled, and the name it is reported under.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Watched {
    /// The name in the report (a service's, say).
    pub name: String,
    /// Its process id.
    pub pid: u32,
}

impl FromStr for Watched {
    type Err = String;

    /// `NAME=PID`, as `--watch-process` takes it.
    fn from_str(text: &str) -> Result<Watched, String> {
        let (name, pid) = text
            .split_once('=')
            .ok_or_else(|| format!("expected NAME=PID, got {text:?}"))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("no process name before `=` in {text:?}"));
        }
        let pid = match pid.trim().parse::<u32>() {
            Ok(pid) if pid > 0 => pid,
            _ => return Err(format!("{pid:?} is not a process id (in {text:?})")),
        };
        Ok(Watched {
            name: name.to_owned(),
            pid,
        })
    }
}

/// The processes of the `<name>.pid` files in `dir`, named `<name>`, sorted by name, and a
/// warning for each `.pid` file that holds no process id (or for a directory without any).
/// An unreadable directory is an error: it was asked for by name.
pub(crate) fn pid_dir(dir: &Path) -> Result<(Vec<Watched>, Vec<String>), Error> {
    let read_error = |source| Error::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut processes = Vec::new();
    let mut warnings = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        let Some(name) = pid_file_name(&path) else {
            continue;
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => match text.trim().parse::<u32>() {
                Ok(pid) if pid > 0 => processes.push(Watched { name, pid }),
                _ => warnings.push(format!(
                    "{} holds no process id ({:?}): {name} is not watched",
                    path.display(),
                    crate::truncate(text.trim(), 40)
                )),
            },
            Err(error) => warnings.push(format!(
                "{} could not be read ({error}): {name} is not watched",
                path.display()
            )),
        }
    }
    if processes.is_empty() && warnings.is_empty() {
        warnings.push(format!(
            "{} has no <name>.pid file: no process is watched from it",
            dir.display()
        ));
    }
    processes.sort();
    Ok((processes, warnings))
}

/// `<name>` of a `<name>.pid` file's path.
fn pid_file_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?.strip_suffix(".pid")?;
    (!name.is_empty()).then(|| name.to_owned())
}

/// The resident set size, in bytes, that the text of a `/proc/<pid>/status` file gives on its
/// `VmRSS:` line (in kB, which the kernel means as KiB); `None` without one (a kernel thread, a
/// zombie) or when it is unreadable.
pub fn vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?;
    let mut words = line.split_whitespace();
    let kib: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => kib.checked_mul(1024),
        _ => None,
    }
}

/// One reading of one watched process's resident memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sample {
    /// When it was read, since the run's start.
    pub(crate) at: Duration,
    /// The process's position in [`MemoryLog::processes`].
    pub(crate) process: usize,
    /// Its resident set size, in bytes.
    pub(crate) rss_bytes: u64,
}

/// What the sampler read over the run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MemoryLog {
    /// The watched processes.
    pub(crate) processes: Vec<Watched>,
    /// Every reading, in time order.
    pub(crate) samples: Vec<Sample>,
    /// What could not be read, and from when.
    pub(crate) warnings: Vec<String>,
}

/// Reads the watched processes' memory every [`SAMPLE_PERIOD`] until [`Sampler::stop`].
#[derive(Debug)]
pub(crate) struct Sampler {
    stop: oneshot::Sender<()>,
    task: JoinHandle<MemoryLog>,
}

impl Sampler {
    /// Starts sampling `processes` from `/proc`, timed against `start`, at once and then
    /// every [`SAMPLE_PERIOD`].
    pub(crate) fn start(processes: Vec<Watched>, start: Instant) -> Sampler {
        Sampler::start_in(PathBuf::from("/proc"), processes, start, SAMPLE_PERIOD)
    }

    /// As [`Sampler::start`], reading `<proc_root>/<pid>/status` every `period`.
    pub(crate) fn start_in(
        proc_root: PathBuf,
        processes: Vec<Watched>,
        start: Instant,
        period: Duration,
    ) -> Sampler {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(sample(proc_root, processes, start, period, stopped));
        Sampler { stop, task }
    }

    /// Stops sampling and returns what was read.
    pub(crate) async fn stop(self) -> MemoryLog {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_else(|error| MemoryLog {
            warnings: vec![format!("the memory sampler failed: {error}")],
            ..MemoryLog::default()
        })
    }
}

/// The sampling loop: each process is read until it cannot be (then a warning says so and it
/// is read no more); all are read off the async threads.
async fn sample(
    proc_root: PathBuf,
    processes: Vec<Watched>,
    start: Instant,
    period: Duration,
    mut stopped: oneshot::Receiver<()>,
) -> MemoryLog {
    let mut log = MemoryLog {
        processes,
        ..MemoryLog::default()
    };
    if log.processes.is_empty() {
        return log;
    }
    let root = proc_root.clone();
    match tokio::task::spawn_blocking(move || std::fs::read_dir(&root).map(drop)).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            log.warnings.push(format!(
                "no resident memory is reported: {} cannot be read ({error}; not Linux?)",
                proc_root.display()
            ));
            return log;
        }
        Err(error) => {
            log.warnings
                .push(format!("no resident memory is reported: {error}"));
            return log;
        }
    }
    let mut live: Vec<(usize, u32)> = log
        .processes
        .iter()
        .enumerate()
        .map(|(process, watched)| (process, watched.pid))
        .collect();
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    while !live.is_empty() {
        tokio::select! {
            _ = &mut stopped => break,
            _ = ticks.tick() => {}
        }
        let at = start.elapsed();
        let (root, targets) = (proc_root.clone(), live.clone());
        let Ok(readings) = tokio::task::spawn_blocking(move || read_all(&root, &targets)).await
        else {
            continue;
        };
        for (process, reading) in readings {
            match reading {
                Ok(rss_bytes) => log.samples.push(Sample {
                    at,
                    process,
                    rss_bytes,
                }),
                Err(why) => {
                    live.retain(|&(live_process, _)| live_process != process);
                    if let Some(watched) = log.processes.get(process) {
                        log.warnings.push(format!(
                            "{} (pid {}): resident memory not read from {:.1} s on: {why}",
                            watched.name,
                            watched.pid,
                            at.as_secs_f64()
                        ));
                    }
                }
            }
        }
    }
    log
}

/// Each target's resident memory, or why it cannot be read.
fn read_all(proc_root: &Path, targets: &[(usize, u32)]) -> Vec<(usize, Result<u64, String>)> {
    targets
        .iter()
        .map(|&(process, pid)| {
            let path = proc_root.join(pid.to_string()).join("status");
            let reading = match std::fs::read_to_string(&path) {
                Ok(status) => vm_rss_bytes(&status)
                    .ok_or_else(|| format!("{} has no VmRSS (a zombie?)", path.display())),
                Err(error) => Err(format!("{}: {error}", path.display())),
            };
            (process, reading)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn check(text: &str, expected: Result<(&str, u32), &str>) {
        let parsed = text.parse::<Watched>();
        match expected {
            Ok((name, pid)) => assert_eq!(
                parsed,
                Ok(Watched {
                    name: name.to_owned(),
                    pid
                }),
                "{text}"
            ),
            Err(mentioning) => {
                let error = parsed.expect_err(text);
                assert!(error.contains(mentioning), "{text}: {error}");
            }
        }
    }

    #[test]
    fn watched_processes_are_name_equals_pid() {
        check("order-svc=1234", Ok(("order-svc", 1234)));
        check(" postgres = 77 ", Ok(("postgres", 77)));
        check("a=b=1", Err("is not a process id"));
        check("order-svc", Err("expected NAME=PID"));
        check("=12", Err("no process name"));
        check("x=0", Err("is not a process id"));
        check("x=-3", Err("is not a process id"));
        check("x=", Err("is not a process id"));
    }

    #[test]
    fn vm_rss_is_read_from_the_status_text() {
        for (status, expected) in [
            (
                "Name:\tx\nVmPeak:\t  9 kB\nVmRSS:\t   45312 kB\n",
                Some(45312 * 1024),
            ),
            ("VmRSS: 1 kB", Some(1024)),
            ("Name:\tkthreadd\nState:\tS (sleeping)\n", None),
            ("VmRSS:\t12 MB\n", None),
            ("VmRSS:\tmany kB\n", None),
            ("", None),
        ] {
            assert_eq!(vm_rss_bytes(status), expected, "{status:?}");
        }
    }

    /// A scratch directory, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Scratch {
            let dir = std::env::temp_dir().join(format!("loadgen-rss-{}", uuid::Uuid::now_v7()));
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn write(&self, path: &str, text: &str) {
            let path = self.0.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_pid_directory_names_its_processes() {
        let dir = Scratch::new();
        dir.write("payment-svc.pid", "42\n");
        dir.write("order-svc.pid", "7");
        dir.write("notify-svc.pid", "starting");
        dir.write("order-svc.log", "not a pid file");
        dir.write(".pid", "9");
        let (processes, warnings) = pid_dir(&dir.0).unwrap();
        assert_eq!(
            processes,
            vec![
                Watched {
                    name: "order-svc".into(),
                    pid: 7
                },
                Watched {
                    name: "payment-svc".into(),
                    pid: 42
                },
            ]
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("notify-svc is not watched"),
            "{warnings:?}"
        );

        let empty = Scratch::new();
        let (processes, warnings) = pid_dir(&empty.0).unwrap();
        assert!(processes.is_empty());
        assert!(warnings[0].contains("no <name>.pid file"), "{warnings:?}");
        assert!(matches!(
            pid_dir(&empty.0.join("missing")),
            Err(Error::Read { .. })
        ));
    }

    #[tokio::test]
    async fn samples_are_taken_until_a_process_goes_away() {
        let root = Scratch::new();
        root.write("7/status", "Name:\ta\nVmRSS:\t  100 kB\n");
        root.write("8/status", "Name:\tb\nVmRSS:\t  200 kB\n");
        let processes = vec![
            Watched {
                name: "a".into(),
                pid: 7,
            },
            Watched {
                name: "b".into(),
                pid: 8,
            },
            Watched {
                name: "gone".into(),
                pid: 9,
            },
        ];
        let start = Instant::now();
        let sampler = Sampler::start_in(
            root.0.clone(),
            processes.clone(),
            start,
            Duration::from_millis(20),
        );
        tokio::time::sleep(Duration::from_millis(70)).await;
        root.write("8/status", "Name:\tb\nState:\tZ (zombie)\n");
        tokio::time::sleep(Duration::from_millis(70)).await;
        let log = sampler.stop().await;
        assert_eq!(log.processes, processes);
        let of = |process: usize| -> Vec<u64> {
            log.samples
                .iter()
                .filter(|sample| sample.process == process)
                .map(|sample| sample.rss_bytes)
                .collect()
        };
        assert!(of(0).len() >= 4, "{log:?}");
        assert!(of(0).iter().all(|&bytes| bytes == 100 * 1024));
        assert!(!of(1).is_empty() && of(1).len() < of(0).len(), "{log:?}");
        assert!(of(2).is_empty());
        assert!(log.samples.windows(2).all(|pair| pair[0].at <= pair[1].at));
        assert_eq!(log.warnings.len(), 2, "{:?}", log.warnings);
        assert!(
            log.warnings[0].starts_with("gone (pid 9)"),
            "{:?}",
            log.warnings
        );
        assert!(log.warnings[1].contains("no VmRSS"), "{:?}", log.warnings);
    }

    #[tokio::test]
    async fn without_proc_there_is_a_warning_and_no_memory() {
        let missing = std::env::temp_dir().join(format!("no-proc-{}", uuid::Uuid::now_v7()));
        let watched = vec![Watched {
            name: "order-svc".into(),
            pid: 1,
        }];
        let sampler = Sampler::start_in(missing, watched, Instant::now(), SAMPLE_PERIOD);
        let log = sampler.stop().await;
        assert!(log.samples.is_empty());
        assert_eq!(log.warnings.len(), 1, "{:?}", log.warnings);
        assert!(log.warnings[0].contains("no resident memory is reported"));

        let log = Sampler::start(Vec::new(), Instant::now()).stop().await;
        assert_eq!(log, MemoryLog::default());
    }

    #[tokio::test]
    async fn this_process_is_sampled_from_the_real_proc() {
        let me = Watched {
            name: "me".into(),
            pid: std::process::id(),
        };
        let sampler = Sampler::start(vec![me], Instant::now());
        tokio::time::sleep(Duration::from_millis(50)).await;
        let log = sampler.stop().await;
        assert!(log.warnings.is_empty(), "{:?}", log.warnings);
        assert_eq!(log.samples.len(), 1, "the first sample is taken at once");
        assert!(log.samples[0].rss_bytes > 1024 * 1024, "{log:?}");
    }
}
