//! Progress display: a bar on a terminal, plain lines in logs.

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress reporter for `total` steps of a named task.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    last_pct: Mutex<u64>,
}

impl Progress {
    /// A bar on a terminal, plain lines on stderr otherwise; nothing with `quiet`.
    pub fn new(label: &str, total: u64, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
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
        Self {
            bar,
            label: label.to_owned(),
            total,
            last_pct: Mutex::new(if quiet { u64::MAX } else { 0 }),
        }
    }

    /// Sets the number of finished steps.
    pub fn set(&self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            return;
        }
        let pct = done * 100 / self.total.max(1);
        if let Ok(mut last) = self.last_pct.lock() {
            if *last != u64::MAX && (pct >= *last + 10 || done == self.total) {
                *last = pct;
                eprintln!("{}: {done}/{} ({pct}%)", self.label, self.total);
            }
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
    }
}
