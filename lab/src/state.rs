//! Records of running labs, so that what a crashed lab left behind is found and
//! removed by the next `loadlab` command, and `loadlab status` / `down` can find a
//! lab started by `loadlab up`.
//!
//! Each lab writes one JSON record into the state directory
//! (`$TMPDIR/loadlab-state-<uid>/<id>.json`) naming its owner process, its working
//! directory and its network namespaces. Every component runs with its working
//! directory inside the lab's, so "the processes of a lab" are the processes whose
//! cwd is in that directory: nothing depends on having recorded a pid in time. A
//! record whose owner is gone is stale: its processes are killed, its namespaces
//! deleted, its directory removed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A process, told apart from a later one that reuses its pid by its start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessId {
    pub pid: u32,
    /// Clock ticks after boot (field 22 of /proc/<pid>/stat).
    pub start_time: u64,
}

impl ProcessId {
    pub fn of(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) may hold spaces; the rest follows its ')'.
        let after_name = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // Zombies have finished running; they are no owner.
        if fields.first() == Some(&"Z") {
            return None;
        }
        Some(Self { pid, start_time: fields.get(19)?.parse().ok()? })
    }

    pub fn current() -> Self {
        Self::of(std::process::id()).expect("our own /proc entry")
    }

    pub fn alive(&self) -> bool {
        Self::of(self.pid) == Some(*self)
    }
}

/// One lab's record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabRecord {
    pub id: String,
    /// "run" or "up".
    pub kind: String,
    pub owner: ProcessId,
    pub work_dir: PathBuf,
    pub namespaces: Vec<String>,
    /// What to show in `loadlab status`: (name, URL, namespace it is reachable in).
    pub urls: Vec<(String, String, Option<String>)>,
    pub started: String,
}

/// The directory of lab records.
pub fn state_dir() -> PathBuf {
    std::env::temp_dir().join(format!("loadlab-state-{}", nix::unistd::Uid::effective()))
}

/// This process's registration of a lab; removes the record when dropped (after the
/// lab itself has been torn down).
#[derive(Debug)]
pub struct Registration {
    path: PathBuf,
    pub record: LabRecord,
}

impl Registration {
    pub fn new(id: &str, kind: &str, work_dir: &Path) -> std::io::Result<Self> {
        let dir = state_dir();
        std::fs::create_dir_all(&dir)?;
        let record = LabRecord {
            id: id.to_string(),
            kind: kind.to_string(),
            owner: ProcessId::current(),
            work_dir: work_dir.to_path_buf(),
            namespaces: Vec::new(),
            urls: Vec::new(),
            started: chrono::Utc::now().to_rfc3339(),
        };
        let registration = Self { path: dir.join(format!("{id}.json")), record };
        registration.save()?;
        Ok(registration)
    }

    pub fn save(&self) -> std::io::Result<()> {
        let temporary = self.path.with_extension("tmp");
        std::fs::write(&temporary, serde_json::to_vec_pretty(&self.record).expect("record serialises"))?;
        std::fs::rename(temporary, &self.path)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Every record, with whether its owner still runs.
pub fn records() -> Vec<(LabRecord, bool)> {
    let Ok(entries) = std::fs::read_dir(state_dir()) else { return Vec::new() };
    let mut records: Vec<(LabRecord, bool)> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.path().extension().is_some_and(|extension| extension == "json"))
        .filter_map(|entry| serde_json::from_slice::<LabRecord>(&std::fs::read(entry.path()).ok()?).ok())
        .map(|record| {
            let alive = record.owner.alive();
            (record, alive)
        })
        .collect();
    records.sort_by(|a, b| a.0.started.cmp(&b.0.started));
    records
}

/// Removes what crashed labs left behind; returns one line per thing removed.
pub fn clean_stale() -> Vec<String> {
    let mut cleaned = Vec::new();
    let live = records();
    for (record, alive) in &live {
        if *alive {
            continue;
        }
        for process in processes_in(&record.work_dir) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(process.pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            cleaned.push(format!("killed process {} left by lab {}", process.pid, record.id));
        }
        for namespace in &record.namespaces {
            crate::netns::delete(namespace);
            cleaned.push(format!("deleted network namespace {namespace}"));
        }
        if record.work_dir.exists() {
            let _ = std::fs::remove_dir_all(&record.work_dir);
            cleaned.push(format!("removed {}", record.work_dir.display()));
        }
        let _ = std::fs::remove_file(state_dir().join(format!("{}.json", record.id)));
    }
    // Namespaces no live lab claims (a lab that crashed before saving its record).
    let claimed: Vec<&String> =
        live.iter().filter(|(_, alive)| *alive).flat_map(|(record, _)| &record.namespaces).collect();
    let live_ids: Vec<String> = live.iter().filter(|(_, alive)| *alive).map(|(record, _)| record.id.clone()).collect();
    for namespace in crate::netns::existing() {
        let owned_by_live = live_ids.iter().any(|id| namespace.starts_with(&format!("{}{id}-", crate::netns::PREFIX)));
        if !claimed.contains(&&namespace) && !owned_by_live {
            crate::netns::delete(&namespace);
            cleaned.push(format!("deleted orphaned network namespace {namespace}"));
        }
    }
    cleaned
}

/// Processes (not zombies) whose working directory is inside `dir`.
pub fn processes_in(dir: &Path) -> Vec<ProcessId> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(dir)))
        .filter_map(ProcessId::of)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_is_alive_and_a_made_up_one_is_not() {
        let me = ProcessId::current();
        assert!(me.alive());
        assert!(!ProcessId { start_time: me.start_time + 1, ..me }.alive());
    }
}
