//! The live progress bar: elapsed time, orders sent, current send rate, completed and
//! cancelled counts, errors. Drawn on stderr (hidden when it is not a terminal or with
//! `--quiet`), so the final table on stdout stays clean.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::drive::Stop;
use crate::ledger::{Counters, Ledger};

const SENDING: u8 = 0;
const SETTLING: u8 = 1;
const LOOKING_UP: u8 = 2;

/// Resolution of the bar's position.
const STEPS: u64 = 1_000;
/// The current rate is measured over this window.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// A progress bar refreshed from the ledger's counters until [`Progress::finish`].
pub(crate) struct Progress {
    bar: ProgressBar,
    phase: Arc<AtomicU8>,
    task: JoinHandle<()>,
}

impl Progress {
    /// Starts drawing (unless `quiet`).
    pub(crate) fn start(quiet: bool, ledger: Arc<Ledger>, start: Instant, stop: Stop) -> Progress {
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(STEPS)
        };
        let style = ProgressStyle::with_template(
            "{spinner:.green} [{elapsed_precise}] [{bar:30.cyan/blue}] {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        let phase = Arc::new(AtomicU8::new(SENDING));
        let task = tokio::spawn(refresh(
            bar.clone(),
            Arc::clone(&phase),
            ledger,
            start,
            stop,
        ));
        Progress { bar, phase, task }
    }

    /// Sending is over; waiting for terminal events.
    pub(crate) fn settling(&self) {
        self.phase.store(SETTLING, Ordering::Relaxed);
    }

    /// Looking up `count` orders whose event did not come.
    pub(crate) fn looking_up(&self, count: usize) {
        self.phase.store(LOOKING_UP, Ordering::Relaxed);
        self.bar
            .println(format!("looking up {count} order(s) not seen terminal"));
    }

    /// Stops refreshing and removes the bar.
    pub(crate) fn finish(self) {
        self.task.abort();
        self.bar.finish_and_clear();
    }
}

async fn refresh(
    bar: ProgressBar,
    phase: Arc<AtomicU8>,
    ledger: Arc<Ledger>,
    start: Instant,
    stop: Stop,
) {
    let mut samples: VecDeque<(Instant, u64)> = VecDeque::new();
    let mut ticks = tokio::time::interval(Duration::from_millis(200));
    loop {
        ticks.tick().await;
        let counters = &ledger.counters;
        let now = Instant::now();
        let sent = Counters::get(&counters.sent);
        let created = Counters::get(&counters.created);
        let completed = Counters::get(&counters.completed);
        let cancelled = Counters::get(&counters.cancelled);
        let errors = Counters::get(&counters.errors);
        let in_flight = Counters::get(&counters.in_flight);

        samples.push_back((now, sent));
        while samples
            .front()
            .is_some_and(|&(at, _)| now.duration_since(at) > RATE_WINDOW)
            && samples.len() > 2
        {
            samples.pop_front();
        }
        let rate = match (samples.front(), samples.back()) {
            (Some(&(first_at, first)), Some(&(last_at, last))) if last_at > first_at => {
                (last - first) as f64 / last_at.duration_since(first_at).as_secs_f64()
            }
            _ => 0.0,
        };

        let counts = format!(
            "sent {sent} ({rate:.1}/s) | completed {completed} | cancelled {cancelled} | errors {errors}"
        );
        let terminal = completed + cancelled;
        match phase.load(Ordering::Relaxed) {
            SENDING => {
                let by_orders = stop
                    .orders
                    .map_or(0.0, |orders| sent as f64 / orders.max(1) as f64);
                let by_time = stop.duration.map_or(0.0, |duration| {
                    start.elapsed().as_secs_f64() / duration.as_secs_f64()
                });
                bar.set_position((by_orders.max(by_time).min(1.0) * STEPS as f64) as u64);
                bar.set_message(format!("{counts} | in flight {in_flight}"));
            }
            SETTLING => {
                let done = if created == 0 {
                    1.0
                } else {
                    terminal as f64 / created as f64
                };
                bar.set_position((done.min(1.0) * STEPS as f64) as u64);
                bar.set_message(format!(
                    "settling: {} not terminal | {counts}",
                    created.saturating_sub(terminal)
                ));
            }
            _ => bar.set_message(format!("looking up | {counts}")),
        }
        bar.tick();
    }
}
