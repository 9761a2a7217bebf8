//! A small logger: stderr always, a file when `FERRO_LOG_FILE` is set. stdout is never
//! touched (it carries only the result or error JSON).
//!
//! `FERRO_LOG` sets the level (`error`, `warn` (default), `info`, `debug`, `trace`).

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::env::Env;

struct Logger {
    plugin: &'static str,
    level: log::LevelFilter,
    file: Option<Mutex<std::fs::File>>,
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!(
            "{}[{}] {} {}\n",
            self.plugin,
            std::process::id(),
            record.level(),
            record.args()
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
        if let Some(f) = &self.file {
            let ts = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default();
            if let Ok(mut f) = f.lock() {
                let _ = write!(f, "{ts:.3} {line}");
            }
        }
    }

    fn flush(&self) {}
}

/// Installs the logger once per process; later calls are ignored.
pub fn init(plugin: &'static str, env: &Env) {
    let level = env
        .get("FERRO_LOG")
        .and_then(|l| l.parse().ok())
        .unwrap_or(log::LevelFilter::Warn);
    let file = env.get_nonempty("FERRO_LOG_FILE").and_then(|p| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .ok()
            .map(Mutex::new)
    });
    let level = if file.is_some() {
        level.max(log::LevelFilter::Info)
    } else {
        level
    };
    if log::set_boxed_logger(Box::new(Logger {
        plugin,
        level,
        file,
    }))
    .is_ok()
    {
        log::set_max_level(level);
    }
}
