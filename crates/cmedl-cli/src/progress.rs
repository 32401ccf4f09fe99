//! Progress display: a bar on a terminal, plain lines in logs (every 10 %, and at least every
//! 30 s, so that a log shows a slow step is alive).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Longest wait between two plain progress lines.
const LINE_EVERY: Duration = Duration::from_secs(30);

/// Whether a plain progress line is due: every 10 %, once at the end, or when `LINE_EVERY` has
/// passed since the last one.
fn line_due(pct: u64, last_pct: u64, since_last: Duration, done: u64, total: u64) -> bool {
    pct >= last_pct + 10 || (done == total && last_pct < 100) || since_last >= LINE_EVERY
}

/// What the plain lines share with the heartbeat thread.
struct Lines {
    label: String,
    total: u64,
    start: Instant,
    /// Steps done, the percentage and the time of the last line.
    state: Mutex<(u64, u64, Instant)>,
    stop: AtomicBool,
}

impl Lines {
    /// Records `done` steps (none: the heartbeat's check) and prints a line when one is due.
    fn update(&self, done: Option<u64>) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        let done = done.unwrap_or(s.0);
        s.0 = done;
        let pct = done * 100 / self.total.max(1);
        let now = Instant::now();
        if line_due(pct, s.1, now - s.2, done, self.total) {
            s.1 = pct;
            s.2 = now;
            eprintln!(
                "{}: {done}/{} ({pct}%), {:.0} s",
                self.label,
                self.total,
                (now - self.start).as_secs_f64()
            );
        }
    }
}

/// A progress reporter for `total` steps of a named task.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    lines: Option<Arc<Lines>>,
}

impl Progress {
    /// A bar on a terminal, plain lines on stderr otherwise; nothing with `quiet`.
    pub fn new(label: &str, total: u64, quiet: bool) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let bar = (!quiet && terminal).then(|| {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template(
                "{msg} [{bar:30}] {pos}/{len} {elapsed_precise} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(label.to_owned());
            bar
        });
        let lines = (!quiet && !terminal).then(|| {
            let lines = Arc::new(Lines {
                label: label.to_owned(),
                total,
                start: Instant::now(),
                state: Mutex::new((0, 0, Instant::now())),
                stop: AtomicBool::new(false),
            });
            // The heartbeat: a step that takes minutes still gets a line every 30 s.
            let beat = Arc::clone(&lines);
            std::thread::spawn(move || {
                while !beat.stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(500));
                    if !beat.stop.load(Ordering::Relaxed) {
                        beat.update(None);
                    }
                }
            });
            lines
        });
        Self {
            bar,
            label: label.to_owned(),
            lines,
        }
    }

    /// Sets the number of finished steps.
    pub fn set(&self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
        if let Some(lines) = &self.lines {
            lines.update(Some(done));
        }
    }

    /// Shows a status next to the bar (on a terminal only).
    pub fn message(&self, status: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{} {status}", self.label));
        }
    }

    /// Ends the display.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if let Some(lines) = &self.lines {
            lines.stop.store(true, Ordering::Relaxed);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(lines) = &self.lines {
            lines.stop.store(true, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_come_every_ten_percent_and_at_least_every_30_seconds() {
        let s = Duration::from_secs;
        assert!(!line_due(5, 0, s(29), 5, 100));
        assert!(
            line_due(5, 0, s(30), 5, 100),
            "a slow first step still shows"
        );
        assert!(line_due(0, 0, s(30), 0, 100), "so does no step at all");
        assert!(line_due(10, 0, s(1), 10, 100));
        assert!(line_due(100, 95, s(1), 100, 100), "the end shows");
        assert!(!line_due(100, 100, s(1), 100, 100), "once");
        assert!(!line_due(12, 10, s(1), 12, 100));
    }
}
