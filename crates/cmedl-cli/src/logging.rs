//! Diagnostics on stderr: the libraries emit `tracing` events, shown here as plain lines
//! (`warning: …`, status lines, and with `-v` `debug cmedl_trainer::trainer: …`).

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::Global;

/// The crates whose events are shown at the chosen level (others: warnings only).
const CRATES: [&str; 8] = [
    "cmedl",
    "cmedl_experiment",
    "cmedl_io",
    "cmedl_losses",
    "cmedl_metrics",
    "cmedl_models",
    "cmedl_phantom",
    "cmedl_trainer",
];

/// The filter of `global`, unless `RUST_LOG` gives one; `quiet` keeps warnings and errors only.
fn filter(global: &Global, quiet: bool) -> EnvFilter {
    if let Ok(f) = EnvFilter::try_from_default_env() {
        return f;
    }
    let level = match global.verbose {
        0 if quiet => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let mut directives = vec!["warn".to_owned()];
    directives.extend(CRATES.iter().map(|c| format!("{c}={level}")));
    EnvFilter::new(directives.join(","))
}

/// Installs the subscriber; `quiet` (from `--quiet` or a command's machine-readable output)
/// hides status lines.
pub fn init(global: &Global, quiet: bool) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(global, quiet))
        .with_writer(std::io::stderr)
        .event_format(PlainLines)
        .try_init();
}

/// One line per event: `warning: …` and `error: …` like the CLI's own messages, status lines
/// as they are, and debug/trace events with their level and target.
struct PlainLines;

impl<S, N> FormatEvent<S, N> for PlainLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        match *meta.level() {
            Level::ERROR => write!(writer, "error: ")?,
            Level::WARN => write!(writer, "warning: ")?,
            Level::INFO => {}
            level => write!(
                writer,
                "{} {}: ",
                level.as_str().to_ascii_lowercase(),
                meta.target()
            )?,
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
