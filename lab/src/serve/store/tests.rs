//! The store on a real SQLite file in a temporary directory: round trips, state
//! changes, concurrent writers, orphans, filters, and the list of 10,000 runs using
//! its index.

use loadgen::collector::SecondRow;

use super::*;

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    (dir, store)
}

fn plan(id: &str) -> NewRun {
    NewRun { id: id.into(), kind: "plan", source: "serve", plan: Some("smoke".into()), ..NewRun::default() }
}

fn second(second: u64) -> SecondRow {
    SecondRow {
        second,
        step: "step 1".into(),
        offered_rate: 100.0,
        sent: 100,
        completed: 100,
        ok: 100,
        errors: 0,
        dropped: 0,
        p50_ms: Some(1.0),
        p90_ms: Some(2.0),
        p99_ms: Some(3.0),
        p99_uncorrected_ms: Some(2.5),
        lag_p99_ms: None,
        errors_by_kind: Default::default(),
        agents: Vec::new(),
    }
}

#[tokio::test]
async fn a_run_is_recorded_as_it_goes_and_read_back_after_reopening() {
    let (dir, store) = store().await;
    let run = store.create(plan("r1")).await.unwrap();
    assert_eq!((run.state, run.kind.as_str()), (RunState::Created, "plan"));
    assert!(matches!(store.create(plan("r1")).await, Err(StoreError::Exists(_))));
    store.transition("r1", &[RunState::Created], RunState::Running).await.unwrap();
    for s in 0..5 {
        store.add_second("r1", s, &second(s)).await.unwrap();
    }
    let finish =
        Finish { outcome: Some(Outcome::Held), verdict: Some("held".into()), exit_code: Some(0), ..Finish::default() };
    let run = store.finish("r1", finish).await.unwrap();
    assert_eq!((run.state, run.outcome), (RunState::Finished, Some(Outcome::Held)));
    assert!(run.duration_seconds.unwrap() >= 0.0);
    store.close().await;

    let again = Store::open(dir.path()).await.unwrap();
    assert_eq!(again.get("r1").await.unwrap(), run);
    let seconds = again.seconds("r1", None).await.unwrap();
    assert_eq!(seconds.len(), 5);
    assert_eq!(seconds[4], second(4));
    assert_eq!(again.seconds("r1", Some(2)).await.unwrap().len(), 2, "the rows after the 3rd");
    // Two steps share a second: both rows are kept.
    again.add_second("r1", 5, &second(4)).await.unwrap();
    assert_eq!(again.seconds("r1", None).await.unwrap().len(), 6);
    assert!(matches!(again.get("nope").await, Err(StoreError::NotFound(_))));
}

#[tokio::test]
async fn tests_move_through_their_states_and_refuse_the_rest() {
    let (_dir, store) = store().await;
    let test = NewRun { id: "t1".into(), kind: "test", source: "api", ..NewRun::default() };
    store.create(test).await.unwrap();
    let point = NewDataPoint { time: None, name: "sent".into(), value: 3.0, labels: Default::default() };
    assert_eq!(store.add_datapoints("t1", Some("peer-1"), &[point.clone(), point.clone()]).await.unwrap(), 2);
    let started = store.transition("t1", &[RunState::Created], RunState::Running).await.unwrap();
    assert!(started.started_at.is_some());
    // Starting twice is not an error; finishing a finished test is.
    store.transition("t1", &[RunState::Created], RunState::Running).await.unwrap();
    store.transition("t1", &[RunState::Running], RunState::Finished).await.unwrap();
    let refused = store.transition("t1", &[RunState::Created], RunState::Running).await.unwrap_err();
    assert!(matches!(refused, StoreError::Conflict(_)), "{refused}");
    assert!(matches!(store.add_datapoints("t1", None, &[point]).await, Err(StoreError::Conflict(_))));
    let points = store.datapoints("t1").await.unwrap();
    assert_eq!(points.len(), 2);
    assert_eq!(points[0].client.as_deref(), Some("peer-1"));
}

#[tokio::test]
async fn two_stores_on_one_file_write_at_once_without_losing_anything() {
    // Two pools stand for two processes (loadlab serve and loadlab run --store).
    let dir = tempfile::tempdir().unwrap();
    let (first, second_store) = (Store::open(dir.path()).await.unwrap(), Store::open(dir.path()).await.unwrap());
    let mut tasks = Vec::new();
    for (which, store) in [(0, first.clone()), (1, second_store.clone())] {
        tasks.push(tokio::spawn(async move {
            for n in 0..100 {
                let id = format!("w{which}-{n}");
                store.create(plan(&id)).await.unwrap();
                store.add_second(&id, 0, &second(0)).await.unwrap();
                store.transition(&id, &[RunState::Created], RunState::Running).await.unwrap();
                let point = NewDataPoint { time: None, name: "x".into(), value: 1.0, labels: Default::default() };
                store.add_datapoints(&id, None, &[point]).await.unwrap();
                store.finish(&id, Finish::default()).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let all = first.list(&Filter { limit: Some(1000), ..Filter::default() }).await.unwrap();
    assert_eq!(all.len(), 200);
    assert!(all.iter().all(|run| run.state == RunState::Finished));
}

#[tokio::test]
async fn runs_of_a_dead_process_are_marked_incomplete_and_tests_are_not() {
    let (_dir, store) = store().await;
    store.create(plan("alive")).await.unwrap();
    store.create(plan("orphan")).await.unwrap();
    store.create(NewRun { id: "test".into(), kind: "test", source: "api", ..NewRun::default() }).await.unwrap();
    store.add_second("orphan", 0, &second(0)).await.unwrap();
    // The orphan's owner: a process that no longer exists.
    sqlx::query("update runs set owner_pid = 999999999, owner_start_time = 1 where id in ('orphan', 'test')")
        .execute(&store.pool)
        .await
        .unwrap();
    assert_eq!(store.mark_orphans().await.unwrap(), vec!["orphan".to_string()]);
    let orphan = store.get("orphan").await.unwrap();
    assert_eq!((orphan.state, orphan.outcome), (RunState::Incomplete, Some(Outcome::Incomplete)));
    assert_eq!(store.seconds("orphan", None).await.unwrap().len(), 1, "what it recorded is kept");
    assert_eq!(store.get("alive").await.unwrap().state, RunState::Created);
    assert_eq!(store.get("test").await.unwrap().state, RunState::Created);
}

#[tokio::test]
async fn filters_select_and_bad_filters_name_their_field() {
    let (_dir, store) = store().await;
    for n in 0..6 {
        let mut run = plan(&format!("r{n}"));
        run.experiment = (n % 2 == 0).then(|| "nightly".to_string());
        store.create(run).await.unwrap();
        if n < 3 {
            store.finish(&format!("r{n}"), Finish { outcome: Some(Outcome::Held), ..Finish::default() }).await.unwrap();
        }
    }
    let list = |filter: Filter| {
        let store = store.clone();
        async move { store.list(&filter).await.unwrap().into_iter().map(|run| run.id).collect::<Vec<_>>() }
    };
    assert_eq!(list(Filter { experiment: Some("nightly".into()), ..Filter::default() }).await, ["r4", "r2", "r0"]);
    assert_eq!(list(Filter { state: Some("finished".into()), ..Filter::default() }).await, ["r2", "r1", "r0"]);
    assert_eq!(list(Filter { outcome: Some("held".into()), limit: Some(2), ..Filter::default() }).await, ["r2", "r1"]);
    assert_eq!(list(Filter { limit: Some(2), offset: Some(2), ..Filter::default() }).await, ["r3", "r2"]);
    assert!(list(Filter { since: Some("2999-01-01".into()), ..Filter::default() }).await.is_empty());
    assert_eq!(list(Filter { until: Some("2999-01-01T00:00:00Z".into()), ..Filter::default() }).await.len(), 6);
    for (filter, field) in [
        (Filter { state: Some("done".into()), ..Filter::default() }, "state"),
        (Filter { outcome: Some("ok".into()), ..Filter::default() }, "outcome"),
        (Filter { kind: Some("x".into()), ..Filter::default() }, "kind"),
        (Filter { since: Some("yesterday".into()), ..Filter::default() }, "since"),
        (Filter { limit: Some(0), ..Filter::default() }, "limit"),
        (Filter { limit: Some(10_001), ..Filter::default() }, "limit"),
    ] {
        assert_eq!(store.list(&filter).await.unwrap_err().field, field);
    }
}

#[tokio::test]
async fn ten_thousand_runs_list_through_the_index() {
    let (_dir, store) = store().await;
    let mut transaction = store.pool.begin().await.unwrap();
    for n in 0..10_000 {
        sqlx::query(
            "insert into runs (id, kind, state, outcome, source, plan, experiment, created_at, breaking_point, request) \
             values (?, 'plan', 'finished', 'held', 'serve', 'smoke', ?, ?, ?, ?)",
        )
        .bind(format!("run-{n:05}"))
        .bind(if n % 10 == 0 { Some("nightly") } else { None })
        .bind(format!("2026-01-01T{:02}:{:02}:{:02}.000Z", n / 3600, n / 60 % 60, n % 60))
        .bind(1000.0 + n as f64)
        .bind("x".repeat(2000))
        .execute(&mut *transaction)
        .await
        .unwrap();
    }
    transaction.commit().await.unwrap();
    let started = std::time::Instant::now();
    let all = store.list(&Filter { limit: Some(10_000), ..Filter::default() }).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(all.len(), 10_000);
    assert_eq!(all[0].id, "run-09999", "newest first");
    println!("listed 10,000 runs in {:.1} ms", elapsed.as_secs_f64() * 1000.0);
    // The plans: the list walks the time index (no sort of the table), and a filter by
    // experiment uses its own index.
    for (sql, index) in [
        ("select id from runs order by created_at desc, id desc limit 100", "runs_by_time"),
        ("select id from runs where experiment = 'nightly' order by created_at desc, id desc", "runs_by_experiment"),
        ("select id from runs where state = 'finished' order by created_at desc, id desc", "runs_by_state"),
    ] {
        let rows = sqlx::query(&format!("explain query plan {sql}")).fetch_all(&store.pool).await.unwrap();
        let plan: Vec<String> = rows.iter().map(|row| sqlx::Row::get::<String, _>(row, "detail")).collect();
        let text = plan.join("; ");
        assert!(text.contains(index), "{sql}: {text}");
        assert!(!text.contains("USE TEMP B-TREE FOR ORDER BY"), "{sql} sorts: {text}");
    }
}

#[tokio::test]
async fn live_signal_samples_are_kept_in_order_and_read_back_after_reopening() {
    use crate::serve::signals::{SignalSample, SignalValue};
    let (dir, store) = store().await;
    store.create(plan("r1")).await.unwrap();
    let sample = |second: f64, value: Option<f64>| SignalSample {
        second,
        at: "2026-01-01T00:00:00Z".into(),
        signals: vec![SignalValue { resource: "host CPU".into(), value, limit: 0.95, error: None }],
    };
    // Out of order, and one written twice (a retry keeps one copy).
    store.add_signal_sample("r1", 1, &sample(4.0, Some(0.9))).await.unwrap();
    store.add_signal_sample("r1", 0, &sample(2.0, None)).await.unwrap();
    store.add_signal_sample("r1", 1, &sample(4.0, Some(0.9))).await.unwrap();
    store.close().await;
    let again = Store::open(dir.path()).await.unwrap();
    let samples = again.signal_samples("r1").await.unwrap();
    assert_eq!(samples, vec![sample(2.0, None), sample(4.0, Some(0.9))]);
    assert_eq!(samples[1].signals[0].saturation().map(|s| (s * 100.0).round()), Some(95.0));
    assert!(again.signal_samples("nope").await.unwrap().is_empty());
}
