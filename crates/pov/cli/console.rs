//! What a command shows on stderr while it runs: the progress line on a
//! terminal, the problems each pass over the captures met, and the
//! library's warnings (unless `--quiet`).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use pov::pipeline::{Progress, RunReport};

/// The CLI's [`pov::run::Watch`].
pub struct Console {
    bar: ProgressBar,
    quiet: bool,
}

impl Console {
    /// A console for a command run with `--quiet` or not.
    pub fn new(quiet: bool) -> Console {
        Console { bar: ProgressBar::new(!quiet && std::io::stderr().is_terminal()), quiet }
    }
}

impl pov::run::Watch for Console {
    fn progress(&mut self, p: Progress) {
        self.bar.update(p);
    }

    fn pass_done(&mut self, report: Option<&RunReport>) {
        self.bar.clear();
        // A pass abandoned on a signal: its one line says it all.
        let Some(report) = report.filter(|r| !r.stopped) else { return };
        for w in &report.warnings {
            eprintln!("pov: warning: {w}");
        }
        for e in &report.errors {
            eprintln!("pov: error: {e}");
        }
    }

    fn warning(&mut self, text: String) {
        if !self.quiet {
            eprintln!("pov: warning: {text}");
        }
    }

    fn error(&mut self, text: String) {
        eprintln!("pov: error: {text}");
    }
}

/// A one-line progress display on stderr, redrawn at most 5 times a second.
struct ProgressBar {
    enabled: bool,
    started: Instant,
    last: Option<Instant>,
    drawn: bool,
}

impl ProgressBar {
    fn new(enabled: bool) -> ProgressBar {
        ProgressBar { enabled, started: Instant::now(), last: None, drawn: false }
    }

    fn update(&mut self, p: Progress) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if now.duration_since(self.started) < Duration::from_millis(500)
            || self.last.is_some_and(|l| now.duration_since(l) < Duration::from_millis(200))
        {
            return;
        }
        self.last = Some(now);
        let secs = now.duration_since(self.started).as_secs_f64().max(1e-3);
        let mb = p.bytes_read as f64 / 1e6;
        let line = match p.bytes_total {
            Some(t) if t > 0 => {
                let pct = (p.bytes_read as f64 / t as f64 * 100.0).min(100.0);
                format!("{pct:5.1}%  {mb:.0}/{:.0} MB  {} packets  {:.0} MB/s", t as f64 / 1e6, p.packets, mb / secs)
            }
            _ => format!("{mb:.0} MB  {} packets  {:.0} MB/s", p.packets, mb / secs),
        };
        eprint!("\r\x1b[2K{line}");
        self.drawn = true;
    }

    fn clear(&mut self) {
        if self.drawn {
            eprint!("\r\x1b[2K");
            self.drawn = false;
        }
    }
}
