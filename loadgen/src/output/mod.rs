//! What a run leaves: the terminal lines, `summary.json` and `seconds.csv`.

pub mod report;
pub mod terminal;
