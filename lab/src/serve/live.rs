//! What clients watching a run see as it happens: its state (so clients waiting for
//! a test's start are released together) and, for a plan, every second and step and
//! the live bottleneck signals.
//! The store has everything durably; this only fans it out. An entry is made on
//! demand from the store's state, so waiting clients work the same after a restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use loadgen::collector::SecondRow;
use loadgen::output::report::StepReport;
use serde::Serialize;
use tokio::sync::{broadcast, watch};

use super::signals::SignalSample;
use super::store::{Run, RunState};

/// One event of a run, as sent over server-sent events.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", content = "data", rename_all = "lowercase")]
pub enum Event {
    /// The run changed state (also sent first, with the run as it is).
    State(Box<Run>),
    /// A second of a step ended: its row, at `position` in the run's rows.
    Second { position: u64, row: SecondRow },
    /// A step ended, with its verdict: at `position` in the run's steps.
    Step { position: u64, step: Box<StepReport> },
    /// The bottleneck signals were read (see [`super::signals`]): at `position`.
    Signals { position: u64, sample: Box<SignalSample> },
    /// A client sent data points.
    Datapoints { client: Option<String>, count: usize },
}

impl Event {
    pub fn name(&self) -> &'static str {
        match self {
            Event::State(_) => "state",
            Event::Second { .. } => "second",
            Event::Step { .. } => "step",
            Event::Signals { .. } => "signals",
            Event::Datapoints { .. } => "datapoints",
        }
    }
}

/// A run's channels.
#[derive(Debug)]
pub struct Channels {
    pub state: watch::Sender<RunState>,
    pub events: broadcast::Sender<Event>,
}

/// Every run being watched. A std `Mutex`: it is held only to look a run up, never
/// across an await.
#[derive(Debug, Default)]
pub struct Live {
    runs: Mutex<HashMap<String, Arc<Channels>>>,
}

impl Live {
    /// The channels of run `id`, made with `state` when nobody watched it yet.
    pub fn channels(&self, id: &str, state: RunState) -> Arc<Channels> {
        let mut runs = self.runs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        runs.entry(id.to_string())
            .or_insert_with(|| {
                // A slow watcher that falls 1024 events behind misses some (and is told).
                let (events, _) = broadcast::channel(1024);
                Arc::new(Channels { state: watch::Sender::new(state), events })
            })
            .clone()
    }

    fn existing(&self, id: &str) -> Option<Arc<Channels>> {
        self.runs.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(id).cloned()
    }

    /// Tells watchers of `run` its new state; a final state closes its channels for
    /// new watchers (the present ones get this last event).
    pub fn state(&self, run: &Run) {
        let channels = self.channels(&run.id, run.state);
        channels.state.send_replace(run.state);
        let _ = channels.events.send(Event::State(Box::new(run.clone())));
        if run.state.is_final() {
            self.runs.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&run.id);
        }
    }

    /// Sends an event to the run's watchers, if it has any.
    pub fn send(&self, id: &str, event: Event) {
        if let Some(channels) = self.existing(id) {
            let _ = channels.events.send(event);
        }
    }
}
