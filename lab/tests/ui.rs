//! The web UI in a real browser: Debian's `chromium` driven by `chromedriver`
//! (WebDriver, through fantoccini) against a private `loadlab serve` (its store in a
//! temporary directory, a free port) that runs the shipped topology's `smoke` plan
//! on the lab brought up on this machine.
//!
//! As a user would: open the overview, start `smoke` from the form, watch the live
//! figures change without a reload and agree with the API's row for the same second,
//! stop it; start it again and let it finish; read the breaking point, the
//! bottleneck ranking, the downloads and the Grafana links; reload and see the same
//! charts; find both runs in history, filter, and compare them side by side; open
//! an experiment's page. A script error on any page fails the test. Screenshots of every page are saved under
//! `target/tmp/ui/`.
//!
//! Every wait is bounded; a bound is a liveness limit, far above what it takes.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::error::{CmdError, ErrorStatus};
use fantoccini::{Client, ClientBuilder, Locator};
use loadlab_fixtures::{READY_LIMIT, free_address};
use loadlab_supervise::{Ready, Spec, Supervised, which_any};
use serde_json::{Value, json};

/// The longest a page may take to show what it should.
const PAGE_LIMIT: Duration = Duration::from_secs(30);
/// The longest a smoke run may take, lab included.
const RUN_LIMIT: Duration = Duration::from_secs(240);

/// Where the screenshots go.
fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `GET path` from the service's JSON API.
async fn api(address: SocketAddr, path: &str) -> Value {
    let path = path.to_string();
    let response = tokio::task::spawn_blocking(move || loadlab_supervise::http::get(address, &path))
        .await
        .unwrap()
        .unwrap_or_else(|error| panic!("GET: {error}"));
    assert_eq!(response.status, 200, "{}", response.body);
    serde_json::from_str(&response.body).unwrap()
}

/// chromedriver on a free port, and a headless chromium session through it.
async fn browser() -> (Supervised, Client) {
    let driver = which_any(&["chromedriver"]).expect("chromedriver (apt-get install chromium-driver)");
    let chromium = which_any(&["chromium", "chromium-browser"]).expect("chromium (apt-get install chromium)");
    let address = free_address();
    let spec = Spec::new(driver).name("chromedriver").arg(format!("--port={}", address.port()));
    // chromedriver answers HTTP/1.1 only (the probes speak 1.0): a listening port.
    let process = tokio::task::spawn_blocking(move || spec.start(&Ready::Tcp(address), READY_LIMIT))
        .await
        .unwrap()
        .unwrap_or_else(|error| panic!("{error}"));
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,2000"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&format!("http://{address}"))
        .await
        .unwrap_or_else(|error| panic!("a chromium session: {error}"));
    (process, client)
}

/// The browser on one page of the service.
struct Page {
    client: Client,
    base: String,
    shots: PathBuf,
}

impl Page {
    /// Opens `path` and waits until its script has drawn it.
    async fn open(&self, path: &str) {
        self.client.goto(&format!("{}{path}", self.base)).await.unwrap();
        self.ready(path).await;
    }

    /// Waits until the page says it is drawn; fails on a script error.
    async fn ready(&self, what: &str) {
        let deadline = Instant::now() + PAGE_LIMIT;
        loop {
            let ready = self.client.execute("return document.body.dataset.ready || ''", vec![]).await.unwrap();
            match ready.as_str() {
                Some("true") => break,
                Some("error") => panic!("{what}: {}", self.text("#main").await),
                _ => {}
            }
            assert!(Instant::now() < deadline, "{what} was not drawn within {PAGE_LIMIT:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.no_script_errors(what).await;
    }

    async fn no_script_errors(&self, what: &str) {
        let errors =
            self.client.execute("return window.loadlabErrors || ['app.js did not run']", vec![]).await.unwrap();
        assert_eq!(errors, json!([]), "script errors on {what}");
    }

    /// The element's rendered text, read in one script: the page redraws itself while
    /// a run is live, so an element found by one WebDriver command can be gone
    /// (stale) by the next.
    async fn text(&self, css: &str) -> String {
        let script = "const e = document.querySelector(arguments[0]); return e ? e.innerText : null";
        let text = self.client.execute(script, vec![json!(css)]).await.unwrap();
        text.as_str().unwrap_or_else(|| panic!("{css}: no such element")).to_string()
    }

    async fn count(&self, css: &str) -> usize {
        self.client.find_all(Locator::Css(css)).await.unwrap().len()
    }

    async fn click(&self, css: &str) {
        self.on_fresh(css, async |element| element.click().await.map(drop)).await;
    }

    async fn fill(&self, css: &str, text: &str) {
        self.on_fresh(css, async |element| {
            element.clear().await?;
            element.send_keys(text).await
        })
        .await;
    }

    /// Finds `css` and does `action` on it, finding it again when a redraw made it
    /// stale in between (a few times at most; any other error fails the test).
    async fn on_fresh(&self, css: &str, action: impl AsyncFn(fantoccini::elements::Element) -> Result<(), CmdError>) {
        for _ in 0..5 {
            let element = self.client.find(Locator::Css(css)).await.unwrap_or_else(|error| panic!("{css}: {error}"));
            match action(element).await {
                Ok(()) => return,
                Err(CmdError::Standard(error)) if error.error == ErrorStatus::StaleElementReference => continue,
                Err(error) => panic!("{css}: {error}"),
            }
        }
        panic!("{css}: stale five times in a row");
    }

    /// Evaluates `script` (a function body returning a value) until `done` accepts
    /// its value, at most `limit`.
    async fn until(&self, what: &str, limit: Duration, script: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let value = self.client.execute(script, vec![]).await.unwrap();
            if done(&value) {
                return value;
            }
            assert!(Instant::now() < deadline, "{what}: still {value} after {limit:?}");
            self.no_script_errors(what).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// The run id of the run page on screen.
    async fn run_id(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        url.path().rsplit('/').next().unwrap().to_string()
    }

    /// Starts `smoke` from the overview's form with these overrides; the run's id
    /// (the form leads to the run's page).
    async fn start_smoke(&self, overrides: &[(&str, &str)]) -> String {
        self.open("/ui/").await;
        let plan = self.client.find(Locator::Css("#field-plan")).await.unwrap();
        plan.select_by_value("smoke").await.unwrap();
        for (name, value) in overrides {
            self.fill(&format!("#field-{name}"), value).await;
        }
        self.click("#start button[type=submit]").await;
        self.until("the run's page", PAGE_LIMIT, "return location.pathname", |path| {
            path.as_str().is_some_and(|path| path.starts_with("/ui/runs/"))
        })
        .await;
        self.ready("the run's page").await;
        self.run_id().await
    }
}

/// The live figures on screen: the second, and each figure's raw value.
const LIVE: &str = "const dl = document.querySelector('#now dl'); if (!dl) return null; \
    const out = {second: Number(dl.dataset.second), position: Number(dl.dataset.position)}; \
    for (const dd of dl.querySelectorAll('dd[data-value]')) out[dd.dataset.field] = dd.dataset.value === '' ? null : JSON.parse(dd.dataset.value); \
    out.p99_text = dl.querySelector('[data-field=p99_ms]').textContent; \
    out.state = document.querySelector('#state').dataset.state; return out;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_starts_watches_explains_and_compares_runs_in_chromium() {
    let data = tempfile::tempdir().unwrap();
    // An experiment due half a day from now: listed, never run during the test.
    let experiments = data.path().join("experiments.toml");
    let daily = (chrono::Utc::now() + chrono::Duration::hours(12)).format("%H:%M");
    std::fs::write(&experiments, format!("[experiments.nightly]\nplan = \"smoke\"\ndaily = \"{daily}\"\n")).unwrap();
    let address = free_address();
    let serve = common::loadlab()
        .name("loadlab serve")
        .env("RUST_LOG", "info")
        .args(["serve", "--listen", &address.to_string(), "--grafana", "http://grafana.invalid:3000", "--data"])
        .arg(data.path().join("store"))
        .arg("--experiments")
        .arg(&experiments);
    let _serve = tokio::task::spawn_blocking(move || serve.start(&Ready::http(address, "/openapi.json"), READY_LIMIT))
        .await
        .unwrap()
        .unwrap_or_else(|error| panic!("{error}"));
    let (_driver, client) = browser().await;
    let page = Page { client, base: format!("http://{address}"), shots: screenshots() };

    // The overview: the lab, its plans, the form.
    page.open("/ui/").await;
    assert!(page.count("#hosts tbody tr").await >= 4, "the topology's hosts");
    assert!(page.text("#plans").await.contains("smoke"));
    assert_eq!(page.text("#active").await, "Nothing is running.");
    assert!(page.text("#experiments").await.contains("nightly"), "the experiments");
    page.screenshot("overview").await;

    // A run started from the form, watched live, stopped.
    let first = page.start_smoke(&[("step-duration", "4s")]).await;
    let request = api(address, &format!("/runs/{first}")).await["request"].clone();
    assert_eq!(request["spec"]["overrides"], json!({"step-duration": "4s"}), "the form's override was sent");
    let live = page
        .until("the first live second", RUN_LIMIT, LIVE, |live| live["second"].as_u64().is_some_and(|s| s >= 1))
        .await;
    assert_eq!(live["state"], "running", "the first second seen live: {live}");
    // The figures move without a reload (the same document: its marker stays).
    page.client.execute("window.sameDocument = true", vec![]).await.unwrap();
    let later = page
        .until("a later live second", PAGE_LIMIT, LIVE, |later| {
            later["second"].as_u64().is_some_and(|second| second >= live["second"].as_u64().unwrap() + 2)
        })
        .await;
    assert_eq!(page.client.execute("return window.sameDocument", vec![]).await.unwrap(), json!(true));
    assert_eq!(later["state"], "running", "{later}");
    // What the page shows for a second is what the API has for it (the row at the
    // same position: a step's last second and the next step's first can share a
    // number).
    let rows = api(address, &format!("/runs/{first}/seconds")).await;
    let second = later["second"].as_u64().unwrap();
    let position = later["position"].as_u64().unwrap() as usize;
    let row = &rows.as_array().unwrap()[position];
    assert_eq!(row["second"], second, "the API's row {position}: {row}");
    for field in ["offered_rate", "completed", "p50_ms", "p90_ms", "p99_ms", "p99_uncorrected_ms", "errors", "dropped"]
    {
        assert_eq!(later[field].as_f64(), row[field].as_f64(), "{field} of second {second}: page {later}, API {row}");
    }
    assert!(rows.as_array().unwrap().iter().any(|row| row["offered_rate"].as_f64() > Some(0.0)), "{rows}");
    let p99 = later["p99_ms"].as_f64().unwrap();
    assert!(later["p99_text"].as_str().unwrap().ends_with(" ms"), "{later}");
    assert!(p99 > 0.0);
    for chart in ["#chart-rate path", "#chart-latency path", "#chart-errors", "#chart-lag"] {
        assert!(page.count(chart).await >= 1, "{chart} on the live page");
    }
    // The bottleneck signals arrive while it runs, with values once Prometheus has
    // scraped the lab (read every 2 s from the lab's Prometheus).
    let script = "return document.querySelector('#state').dataset.state === 'running' ? \
        [...document.querySelectorAll('#signals tbody tr td:nth-child(4)')].filter(td => td.textContent.endsWith('%')).length : -1";
    page.until("live bottleneck signals with values", PAGE_LIMIT, script, |n| n.as_u64().is_some_and(|n| n >= 3)).await;
    page.screenshot("live").await;
    page.click("#stop").await;
    page.until("the stopped run", RUN_LIMIT, "return document.querySelector('#state').dataset.state", |state| {
        state == "cancelled"
    })
    .await;
    assert!(page.text("#verdict").await.contains("cancelled on request"), "{}", page.text("#verdict").await);
    assert_eq!(api(address, &format!("/runs/{first}")).await["run"]["state"], "cancelled");

    // A second run, left to finish: the finished view.
    let second_run = page.start_smoke(&[("step-duration", "3s")]).await;
    page.until("the finished run", RUN_LIMIT, "return document.querySelector('#state').dataset.state", |state| {
        state.as_str().is_some_and(|state| !["created", "running"].contains(&state))
    })
    .await;
    page.until("the finished view", PAGE_LIMIT, "return !!document.querySelector('#breaking-point')", |shown| {
        shown == true
    })
    .await;
    let detail = api(address, &format!("/runs/{second_run}")).await;
    assert_eq!(detail["run"]["state"], "finished", "{}", detail["run"]);
    let breaking = detail["breaking_point"]["rate"].as_f64().expect("a breaking point");
    let shown = page.text("#breaking-point").await;
    assert!(shown.contains(&format!("{} requests/s held", thousands(breaking))), "{shown} vs {breaking}");
    let verdict = detail["bottlenecks"]["verdict"].as_str().unwrap();
    assert_eq!(page.text("#bottleneck").await, verdict);
    let ranking = detail["bottlenecks"]["ranking"].as_array().unwrap();
    assert_eq!(page.count("#ranking tbody tr").await, ranking.len());
    let first_ranked = page.text("#ranking tbody tr:first-child td:nth-child(2)").await;
    assert_eq!(first_ranked, ranking[0]["resource"].as_str().unwrap());
    assert_eq!(page.count("#steps tbody tr").await, detail["steps"].as_array().unwrap().len());
    for link in ["summary.json", "seconds.csv", "report.html"] {
        let href = format!("/runs/{second_run}/{link}");
        assert_eq!(page.count(&format!("#downloads a[href='{href}']")).await, 1, "{link}");
        assert_eq!(loadlab_supervise::http::status(address, &href), Some(200), "{href}");
    }
    let grafana = page.client.find_all(Locator::Css("#grafana a")).await.unwrap();
    assert!(!grafana.is_empty(), "Grafana links");
    let href = grafana[0].attr("href").await.unwrap().unwrap();
    assert!(href.starts_with("http://grafana.invalid:3000/d/loadlab-") && href.contains("from="), "{href}");
    let charts = page.client.execute("return document.querySelector('#charts').innerHTML", vec![]).await.unwrap();
    assert!(page.count("#chart-signals path").await >= 1, "the signals' chart");
    page.screenshot("finished").await;
    // A reload draws the same charts from the store.
    page.client.refresh().await.unwrap();
    page.ready("the reloaded run").await;
    let again = page.client.execute("return document.querySelector('#charts').innerHTML", vec![]).await.unwrap();
    assert!(charts == again, "the charts differ after a reload");
    assert_eq!(page.text("#bottleneck").await, verdict);

    // History: both runs, a filter, and the two compared.
    page.open("/ui/history").await;
    for id in [&first, &second_run] {
        assert_eq!(page.count(&format!("#runs tr[data-run='{id}']")).await, 1, "{id} in history");
    }
    page.screenshot("history").await;
    page.open("/ui/history?outcome=cancelled").await;
    assert_eq!(page.count("#runs tbody tr").await, 1, "only the stopped run is cancelled");
    assert_eq!(page.count(&format!("#runs tr[data-run='{first}']")).await, 1);
    page.open("/ui/history?plan=smoke").await;
    page.click(&format!("input[value='{first}']")).await;
    page.click(&format!("input[value='{second_run}']")).await;
    page.click("#compare").await;
    page.until("the comparison", PAGE_LIMIT, "return location.pathname", |path| path == "/ui/compare").await;
    page.ready("the comparison").await;
    let comparison = api(address, &format!("/compare?a={first}&b={second_run}")).await;
    assert_eq!(page.text("#conclusion").await, comparison["conclusion"].as_str().unwrap());
    let sides = page.text("#sides").await;
    assert!(sides.contains(&first) && sides.contains(&second_run), "{sides}");
    assert!(page.count("#chart-compare path").await >= 1);
    page.screenshot("compare").await;

    // The experiment's page: its trend is empty (no run of it yet), and says so.
    page.open("/ui/experiments/nightly").await;
    assert!(page.text("#regressions").await.starts_with("No regression"));
    assert_eq!(page.text("#change-points").await, "No change point detected.");
    page.screenshot("experiment").await;

    // The overview lists them, and nothing runs any more.
    page.open("/ui/").await;
    assert_eq!(page.text("#active").await, "Nothing is running.");
    assert!(page.text("#runs").await.contains(&second_run));
    page.client.close().await.unwrap();
}

/// A rate as the page writes it (en-US thousands separators, no decimals).
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
