//! Server-sent events of a run or test: `state` first (the run as it is), then for a
//! plan everything recorded so far — every `second`, every `step` with its verdict,
//! every `signals` sample (the live bottleneck signals) — and each new one as it
//! happens, `datapoints` when clients send some, and a last `state` when the run
//! ends, after which the stream closes. A client that reconnects gets everything again
//! from the store, so a reload shows the whole run; each event of a kind comes once,
//! in order (its `id` is its position among its kind).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::{ApiError, AppState};
use crate::serve::live::Event;

type Stream = Sse<axum::response::sse::KeepAliveStream<ReceiverStream<Result<SseEvent, Infallible>>>>;

fn sse(event: &Event) -> SseEvent {
    let data = match event {
        Event::State(run) => serde_json::to_string(run),
        Event::Second { row, .. } => serde_json::to_string(row),
        Event::Step { step, .. } => serde_json::to_string(step),
        Event::Signals { sample, .. } => serde_json::to_string(sample),
        Event::Datapoints { client, count } => {
            serde_json::to_string(&serde_json::json!({"client": client, "count": count}))
        }
    }
    .unwrap_or_default();
    let event_name = event.name();
    let sse = SseEvent::default().event(event_name).data(data);
    match event {
        Event::Second { position, .. } | Event::Step { position, .. } | Event::Signals { position, .. } => {
            sse.id(position.to_string())
        }
        _ => sse,
    }
}

/// The next position of a kind, counted in `counter`.
fn next(counter: &mut u64) -> u64 {
    *counter += 1;
    *counter - 1
}

/// The event stream of run `id`.
async fn stream(state: AppState, id: String) -> Result<Stream, ApiError> {
    let run = state.core.store.get(&id).await?;
    let (sender, receiver) = mpsc::channel::<Result<SseEvent, Infallible>>(256);
    // Subscribe before reading the store, so nothing falls between the two.
    let mut events = (!run.state.is_final()).then(|| state.core.live.channels(&id, run.state).events.subscribe());
    tokio::spawn(async move {
        let send = |event: SseEvent| sender.send(Ok(event));
        let run = state.core.store.get(&id).await.unwrap_or(run);
        if send(sse(&Event::State(Box::new(run.clone())))).await.is_err() {
            return;
        }
        // Of each kind, the positions before these came from the store.
        let (mut seconds, mut steps, mut samples) = (0u64, 0u64, 0u64);
        let store = &state.core.store;
        let stored_seconds = store.seconds(&id, None).await.unwrap_or_default();
        let stored_steps = store.steps(&id).await.unwrap_or_default();
        let stored_samples = store.signal_samples(&id).await.unwrap_or_default();
        let replay = stored_seconds
            .into_iter()
            .map(|row| Event::Second { position: next(&mut seconds), row })
            .chain(
                stored_steps.into_iter().map(|step| Event::Step { position: next(&mut steps), step: Box::new(step) }),
            )
            .chain(
                stored_samples
                    .into_iter()
                    .map(|sample| Event::Signals { position: next(&mut samples), sample: Box::new(sample) }),
            )
            .collect::<Vec<_>>();
        for event in &replay {
            if send(sse(event)).await.is_err() {
                return;
            }
        }
        let Some(events) = events.as_mut() else { return };
        if run.state.is_final() {
            return;
        }
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                () = state.shutdown.cancelled() => return,
            };
            match event {
                Ok(Event::Second { position, .. }) if position < seconds => {}
                Ok(Event::Step { position, .. }) if position < steps => {}
                Ok(Event::Signals { position, .. }) if position < samples => {}
                Ok(event) => {
                    let last = matches!(&event, Event::State(run) if run.state.is_final());
                    match &event {
                        Event::Second { position, .. } => seconds = position + 1,
                        Event::Step { position, .. } => steps = position + 1,
                        Event::Signals { position, .. } => samples = position + 1,
                        _ => {}
                    }
                    if send(sse(&event)).await.is_err() || last {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    let note = SseEvent::default().event("lagged").data(missed.to_string());
                    if send(note).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Ok(Sse::new(ReceiverStream::new(receiver)).keep_alive(KeepAlive::new().interval(Duration::from_secs(10))))
}

/// A run's events (server-sent events: state, second, step, signals, datapoints).
#[utoipa::path(get, path = "/runs/{id}/events", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, description = "text/event-stream: `state`, `second`, `step`, `signals`, `datapoints`", content_type = "text/event-stream"),
        (status = 404, body = super::ErrorBody)))]
pub async fn run_events(State(state): State<AppState>, Path(id): Path<String>) -> Result<Stream, ApiError> {
    stream(state, id).await
}

/// A test's events: clients waiting for the start see `state` change to running.
#[utoipa::path(get, path = "/tests/{id}/events", tag = "tests", params(("id" = String, Path)),
    responses((status = 200, description = "text/event-stream: `state`, `datapoints`", content_type = "text/event-stream"),
        (status = 404, body = super::ErrorBody)))]
pub async fn test_events(State(state): State<AppState>, Path(id): Path<String>) -> Result<Stream, ApiError> {
    stream(state, id).await
}
