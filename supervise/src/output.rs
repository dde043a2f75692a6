//! Where a process's output goes. By default both streams are handed the log file
//! itself (no thread, nothing lost when we die). When lines must be looked at (echoed
//! to our stderr, or filtered), the streams are piped and a thread per stream copies
//! each line on, until the process closes it.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::thread::JoinHandle;

/// Sees each stdout line; answers whether it belongs in the log.
pub type LineFilter = Box<dyn FnMut(&str) -> bool + Send>;

/// Opens `path` for appending (a restarted process adds to its old log).
pub(crate) fn append(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new().create(true).append(true).open(path)
}

/// Copies `stream`'s lines into `log`, each also to our stderr after `echo` when
/// given, and past `filter` when given.
pub(crate) fn copy_lines(
    stream: impl Read + Send + 'static,
    mut log: File,
    echo: Option<String>,
    mut filter: Option<LineFilter>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if filter.as_mut().is_some_and(|keep| !keep(&line)) {
                continue;
            }
            let _ = writeln!(log, "{line}");
            if let Some(prefix) = &echo {
                eprintln!("{prefix}{line}");
            }
        }
    })
}
