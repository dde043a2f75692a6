//! What a run leaves: the terminal lines, `summary.json`, `seconds.csv` and
//! `report.html`.

pub mod charts;
pub mod html;
pub mod merge;
pub mod report;
pub mod terminal;
