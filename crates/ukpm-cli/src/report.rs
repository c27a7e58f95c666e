//! Progress for people, on stderr.

use std::io::Write;

/// Prints each step on its own stderr line; quiet mode simply installs no reporter.
pub struct StderrReporter;

impl ukpm::Reporter for StderrReporter {
    fn step(&self, message: &str) {
        let _ = writeln!(std::io::stderr(), "{message}");
    }

    fn warn(&self, message: &str) {
        let _ = writeln!(std::io::stderr(), "warning: {message}");
    }
}
