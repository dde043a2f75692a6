// loadlab's web UI: every page reads the service's JSON API (the same figures a
// script gets) and draws its charts as SVG. No framework, no third-party code.
"use strict";

// Script errors are shown to the user and kept (a test reads them): a page that
// fails says so instead of showing stale figures.
window.loadlabErrors = [];
window.addEventListener("error", (event) => recordError(event.message || String(event.error)));
window.addEventListener("unhandledrejection", (event) => recordError(String(event.reason && event.reason.message || event.reason)));
function recordError(message) {
  window.loadlabErrors.push(message);
  problem(`A script error: ${message}`);
}

// ---------- small helpers ----------

/** An element: h("td", {class: "num"}, "12"); strings become text (never HTML). */
function h(tag, attrs, ...children) {
  const svg = ["svg", "g", "line", "path", "text", "rect", "circle", "title", "polyline"].includes(tag);
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replaces an element's children (skipping nothing-values, flattening lists). */
function put(el, ...children) {
  el.replaceChildren();
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

async function api(path, options) {
  const response = await fetch(path, options);
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = text; }
  if (!response.ok) {
    const message = body && body.message ? body.message : `${response.status} ${response.statusText}`;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return body;
}

/** Runs of the API's list (`/runs?…`). */
async function listRuns(query) {
  return (await api(`/runs?${query}`)).runs;
}

function problem(message) {
  const el = document.getElementById("problem");
  el.textContent = message;
  el.hidden = !message;
}

const isNum = (v) => typeof v === "number" && Number.isFinite(v);
function num(v, digits) {
  if (!isNum(v)) return "–";
  if (digits === undefined) digits = Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2;
  return v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
const ms = (v) => (isNum(v) ? `${num(v)} ms` : "–");
const perSecond = (v) => (isNum(v) ? `${num(v, 0)}/s` : "–");
const percent = (v) => (isNum(v) ? `${num(v * 100, 0)} %` : "–");
function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().replace("T", " ").slice(0, 19) + " UTC";
}
const seconds = (v) => (isNum(v) ? `${num(v, 1)} s` : "–");
const runLink = (id) => h("a", { href: `/ui/runs/${encodeURIComponent(id)}` }, id);
const isFinal = (state) => !["created", "running"].includes(state);

function outcomeBadge(run) {
  const word = run.outcome || run.state;
  const cls = word === "held" ? "good" : ["failed", "incomplete", "timeout"].includes(word) ? "bad" : "";
  return h("span", { class: `badge ${cls}`, "data-field": "outcome" }, word);
}

function table(headers, rows, attrs) {
  return h("table", attrs || {},
    h("thead", {}, h("tr", {}, headers.map((head) => (typeof head === "string" ? h("th", { scope: "col" }, head) : head)))),
    h("tbody", {}, rows));
}
const td = (value, attrs) => h("td", attrs || {}, value);
const tdn = (value, field) => h("td", { class: "num", "data-field": field }, value);

// ---------- charts ----------

const COLORS = ["#1f5fbf", "#c62828", "#1a7f37", "#a15c00", "#7b1fa2", "#00838f", "#5d4037", "#455a64", "#d81b60", "#827717"];

/** Round steps for an axis from 0 (or min) to max. */
function ticks(min, max, count) {
  if (!(max > min)) max = min + 1;
  const raw = (max - min) / count;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

/**
 * A line chart: {series: [{name, points: [[x, y]], dash}], x: unit label, y: unit
 * label, levels: [{y, label}], marks: [{x, label}], yMin}. Units on both axes.
 */
function lineChart(spec) {
  // The legend wraps below the axis title; the chart grows by its rows.
  const W = 640, L = 62, R = 12, T = 12;
  const legend = [];
  let lx = L, row = 0;
  spec.series.forEach((series, i) => {
    const width = 30 + series.name.length * 6.2;
    if (lx + width > W - R && lx > L) { lx = L; row += 1; }
    legend.push({ series, color: series.color || COLORS[i % COLORS.length], x: lx, row });
    lx += width;
  });
  const B = 44 + 14 * (row + 1), H = 202 + B;
  const all = spec.series.flatMap((s) => s.points.filter((p) => isNum(p[0]) && isNum(p[1])));
  const xs = all.map((p) => p[0]).concat((spec.marks || []).map((m) => m.x));
  const ys = all.map((p) => p[1]).concat((spec.levels || []).map((l) => l.y));
  let x0 = spec.xMin !== undefined ? spec.xMin : xs.length ? Math.min(...xs) : 0, x1 = xs.length ? Math.max(...xs) : 1;
  if (x1 === x0) x1 = x0 + 1;
  const y0 = spec.yMin !== undefined ? spec.yMin : Math.min(0, ...ys);
  let y1 = ys.length ? Math.max(...ys) * 1.08 : 1;
  if (spec.yMax !== undefined) y1 = Math.min(y1, spec.yMax);
  if (!(y1 > y0)) y1 = y0 + 1;
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const svg = h("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": spec.label || "" });
  const yt = ticks(y0, y1, 5), xt = ticks(x0, x1, 8);
  for (const y of yt) {
    svg.append(h("line", { class: "grid", x1: L, x2: W - R, y1: sy(y), y2: sy(y) }),
      h("text", { x: L - 6, y: sy(y) + 4, "text-anchor": "end" }, spec.yFormat ? spec.yFormat(y) : num(y, y % 1 ? 1 : 0)));
  }
  for (const x of xt) {
    svg.append(h("line", { class: "grid", x1: sx(x), x2: sx(x), y1: T, y2: H - B }),
      h("text", { x: sx(x), y: H - B + 15, "text-anchor": "middle" }, spec.xFormat ? spec.xFormat(x) : num(x, x % 1 ? 1 : 0)));
  }
  svg.append(h("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }),
    h("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }),
    h("text", { x: (L + W - R) / 2, y: H - B + 31, "text-anchor": "middle" }, spec.x),
    h("text", { x: 12, y: (T + H - B) / 2, "text-anchor": "middle", transform: `rotate(-90 12 ${(T + H - B) / 2})` }, spec.y));
  for (const level of spec.levels || []) {
    svg.append(h("line", { class: "level", x1: L, x2: W - R, y1: sy(level.y), y2: sy(level.y) }),
      h("text", { x: W - R - 4, y: sy(level.y) - 4, "text-anchor": "end", fill: "#c62828" }, level.label));
  }
  for (const mark of spec.marks || []) {
    svg.append(h("line", { class: "mark", x1: sx(mark.x), x2: sx(mark.x), y1: T, y2: H - B }),
      h("text", { x: sx(mark.x) + 3, y: T + 10 }, mark.label));
  }
  spec.series.forEach((series, i) => {
    const color = series.color || COLORS[i % COLORS.length];
    let d = "", pen = false;
    for (const [x, raw] of series.points) {
      const y = isNum(raw) ? Math.min(raw, y1) : raw;
      if (!isNum(x) || !isNum(y)) { pen = false; continue; }
      d += `${pen ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`;
      pen = true;
    }
    if (d) svg.append(h("path", { d, fill: "none", stroke: color, "stroke-width": 1.8, "stroke-dasharray": series.dash || null }));
    if (series.dots) for (const [x, y] of series.points) if (isNum(x) && isNum(y)) svg.append(h("circle", { cx: sx(x), cy: sy(y), r: 3, fill: color }));
  });
  for (const item of legend) {
    const y = H - B + 50 + item.row * 14;
    svg.append(h("line", { x1: item.x, x2: item.x + 16, y1: y - 4, y2: y - 4, stroke: item.color, "stroke-width": 2.5, "stroke-dasharray": item.series.dash || null }),
      h("text", { x: item.x + 20, y }, item.series.name));
  }
  return svg;
}

function figure(caption, chart, id) {
  return h("figure", { id }, h("figcaption", {}, caption), chart);
}

// ---------- a run's charts (the live view and the finished view draw the same) ----------

function sloLatency(request) {
  const text = request && request.options && request.options["slo-latency"];
  if (!text) return null;
  const m = /^([\d.]+)\s*(ms|s|us|µs)$/.exec(String(text));
  if (!m) return null;
  const v = parseFloat(m[1]);
  return m[2] === "s" ? v * 1000 : m[2] === "ms" ? v : v / 1000;
}

function runCharts(data) {
  const rows = data.seconds.filter(Boolean);
  const x = (r) => r.second;
  const line = (name, f, dash) => ({ name, dash, points: rows.map((r) => [x(r), f(r)]) });
  const slo = sloLatency(data.request);
  const charts = [];
  charts.push(figure("Offered and achieved rate", lineChart({
    label: "offered and achieved requests per second", x: "time since start (s)", xMin: 0, y: "requests/s",
    series: [line("offered", (r) => r.offered_rate), line("achieved (completed)", (r) => r.completed), line("ok", (r) => r.ok, "4 3")],
  }), "chart-rate"));
  charts.push(figure("Latency from the intended send time (corrected) and from the actual send", lineChart({
    label: "latency percentiles in milliseconds", x: "time since start (s)", xMin: 0, y: "latency (ms)",
    series: [line("p50", (r) => r.p50_ms), line("p90", (r) => r.p90_ms), line("p99", (r) => r.p99_ms),
      line("p99 uncorrected", (r) => r.p99_uncorrected_ms, "5 3")],
    levels: slo ? [{ y: slo, label: `SLO ${num(slo, 0)} ms` }] : [],
  }), "chart-latency"));
  const kinds = [...new Set(rows.flatMap((r) => Object.keys(r.errors_by_kind || {})))].sort();
  charts.push(figure("Errors and drops per second, by kind", lineChart({
    label: "errors and drops per second", x: "time since start (s)", xMin: 0, y: "per second",
    series: [line("dropped", (r) => r.dropped), line("errors (all)", (r) => r.errors, "4 3"),
      ...kinds.map((kind) => line(kind, (r) => (r.errors_by_kind || {})[kind] || 0))],
  }), "chart-errors"));
  charts.push(figure("Schedule lag (how late the generator sent), p99", lineChart({
    label: "schedule lag p99 in milliseconds", x: "time since start (s)", xMin: 0, y: "lag p99 (ms)",
    series: [line("lag p99", (r) => r.lag_p99_ms)],
  }), "chart-lag"));
  const samples = (data.signals || []).filter(Boolean);
  if (samples.length) {
    const names = [...new Set(samples.flatMap((s) => s.signals.map((v) => v.resource)))];
    charts.push(figure("Bottleneck signals, share of each one's limit (drawn up to 300 %)", lineChart({
      label: "bottleneck signals as a share of their limits", x: "time since start (s)", xMin: 0, y: "share of limit (%)",
      series: names.map((name) => ({ name, points: samples.map((s) => {
        const values = s.signals.filter((v) => v.resource === name && isNum(v.value));
        return [s.second, values.length ? Math.max(...values.map((v) => (v.value / v.limit) * 100)) : null];
      }) })),
      levels: [{ y: 100, label: "limit" }], yMax: 300,
    }), "chart-signals"));
  }
  const agents = [...new Set(rows.flatMap((r) => (r.agents || []).map((a) => a.agent)))].sort();
  if (agents.length) {
    charts.push(figure("Each agent's share: requests sent per second", lineChart({
      label: "requests sent per agent", x: "time since start (s)", xMin: 0, y: "sent/s",
      series: agents.map((agent) => line(agent, (r) => ((r.agents || []).find((a) => a.agent === agent) || {}).sent)),
    }), "chart-agents"));
  }
  return h("div", { class: "charts" }, charts);
}

function stepsTable(steps) {
  return table(["step", "offered", "achieved", "p50", "p90", "p99 (corrected)", "p99 (uncorrected)", "errors", "dropped", "verdict"],
    steps.filter(Boolean).map((s) => h("tr", {},
      td(s.label), tdn(perSecond(s.offered_rate)), tdn(perSecond(s.achieved_rate)),
      tdn(ms(s.corrected_ms && s.corrected_ms.p50)), tdn(ms(s.corrected_ms && s.corrected_ms.p90)),
      tdn(ms(s.corrected_ms && s.corrected_ms.p99)), tdn(ms(s.uncorrected_ms && s.uncorrected_ms.p99)),
      tdn(num(s.errors, 0)), tdn(num(s.dropped, 0)),
      td(s.held ? h("span", { class: "good" }, "held") : h("span", { class: "bad" }, `broke: ${(s.broken || []).join("; ")}`)))),
    { id: "steps" });
}

function signalsTable(sample) {
  if (!sample) return h("p", { class: "muted" }, "No bottleneck signals yet (they are read from the lab's Prometheus every 2 s).");
  return h("div", {},
    h("p", { class: "muted" }, `Read at ${seconds(sample.second)} into the run.`),
    table(["signal", "value", "limit", "share of limit", ""], sample.signals.map((v) => {
      const share = isNum(v.value) ? v.value / v.limit : null;
      return h("tr", {}, td(v.resource), tdn(isNum(v.value) ? num(v.value, 3) : v.error ? "error" : "–"), tdn(num(v.limit, 3)),
        tdn(percent(share)), td(isNum(share) ? h("span", { class: `bar${share >= 1 ? " over" : ""}`, style: `width:${Math.min(share, 1.5) * 80}px` }) : ""));
    }), { id: "signals" }));
}

// ---------- pages ----------

async function overview(main) {
  const [lab, runs, experiments, active] = await Promise.all([
    api("/topology").catch(() => null), listRuns("limit=10&kind=plan"), api("/experiments"),
    listRuns("state=running&limit=20"),
  ]);
  const queued = await listRuns("state=created&limit=20");
  main.append(h("h1", {}, "The lab"));
  const current = active.concat(queued);
  main.append(h("h2", {}, "Runs in progress"), current.length
    ? table(["run", "plan", "state", "started", ""], current.map((run) => h("tr", {},
      td(runLink(run.id)), td(run.plan || "–"), td(run.state), td(when(run.started_at || run.created_at)),
      td(h("button", { class: "danger", onclick: (e) => stop(run.id, e.target) }, "Stop")))), { id: "active" })
    : h("p", { class: "muted", id: "active" }, "Nothing is running."));

  if (lab) {
    main.append(h("h2", {}, "Start a plan"));
    const options = (name) => (lab.plans[name] || {}).options || {};
    const field = (label, name, hint) => h("label", {}, label, h("input", { name, id: `field-${name}`, placeholder: hint || "", size: 9 }));
    const select = h("select", { name: "plan", id: "field-plan" }, Object.keys(lab.plans).map((name) =>
      h("option", { value: name, selected: name === lab.default_plan }, name)));
    const form = h("form", { class: "inline", id: "start" },
      h("label", {}, "plan", select),
      field("start rate (/s)", "start-rate"), field("step duration", "step-duration"),
      field("SLO latency", "slo-latency"), field("max rate (/s)", "max-rate"),
      h("button", { class: "primary", type: "submit" }, "Start"));
    const describe = h("p", { class: "muted", id: "plan-description" });
    const hints = () => {
      const o = options(select.value);
      for (const name of ["start-rate", "step-duration", "slo-latency", "max-rate"]) {
        form.querySelector(`[name="${name}"]`).placeholder = o[name] !== undefined ? String(o[name]) : "";
      }
      describe.textContent = (lab.plans[select.value] || {}).description || "";
    };
    select.addEventListener("change", hints);
    hints();
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const overrides = {};
      for (const name of ["start-rate", "step-duration", "slo-latency", "max-rate"]) {
        const value = form.querySelector(`[name="${name}"]`).value.trim();
        if (value) overrides[name] = /^[\d.]+$/.test(value) ? Number(value) : value;
      }
      form.querySelector("button").disabled = true;
      try {
        const run = await api("/runs", { method: "POST", headers: { "content-type": "application/json" },
          body: JSON.stringify({ plan: select.value, overrides }) });
        location.href = `/ui/runs/${encodeURIComponent(run.id)}`;
      } catch (error) {
        problem(`The run was refused: ${error.message}`);
        form.querySelector("button").disabled = false;
      }
    });
    main.append(form, describe);

    main.append(h("h2", {}, `Topology (${lab.mode === "local" ? "brought up on this machine for each run" : "the VM network"})`));
    const hosts = (lab.derived && lab.derived.hosts) || {};
    main.append(table(["host", "address", "roles", "CPUs", "memory", "open ports"], Object.entries(hosts).map(([name, host]) =>
      h("tr", {}, td(name), td(host.address), td((host.roles || []).join(", ")), tdn(num(host.vcpus, 0)),
        tdn(`${num(host.memory_mib, 0)} MiB`), td((host.open_tcp_ports || []).join(", ")))), { id: "hosts" }));
    // Components: where the last run found them; up while a run uses them.
    const last = runs.find((run) => run.kind === "plan");
    const detail = last ? await api(`/runs/${encodeURIComponent(last.id)}`).catch(() => null) : null;
    const addresses = detail && detail.lab && detail.lab.layout ? detail.lab.layout.addresses : null;
    if (addresses) {
      const running = active.length > 0;
      const missing = new Set(((detail.lab.missing) || []).map((m) => m.component));
      main.append(h("p", { class: "muted" }, `Components as the last run (${last.id}) laid them out:`),
        table(["host", "component", "URL", "state"], Object.entries(addresses).flatMap(([host, components]) =>
          Object.entries(components).map(([component, address]) => h("tr", {}, td(host), td(component),
            td(h("a", { href: `http://${address}/` }, `http://${address}`)),
            td(missing.has(component) ? "not installed" : running ? "up (a run is in progress)" : lab.mode === "local" ? "down between runs" : "on the network")))),
        { id: "components" }));
    }
    main.append(h("h2", {}, "Plans"), table(["plan", "target", "description", "options"], Object.entries(lab.plans).map(([name, plan]) =>
      h("tr", {}, td(name), td(plan.target), td(plan.description),
        td(Object.entries(plan.options).map(([k, v]) => `${k}=${v}`).join(" ")))), { id: "plans" }));
  }

  main.append(h("h2", {}, "Experiments"), experiments.length
    ? table(["experiment", "plan", "last run", "verdict", "breaking point", "regressions"], experiments.map((e) => h("tr", {},
      td(h("a", { href: `/ui/experiments/${encodeURIComponent(e.name)}` }, e.name)), td(e.spec.plan || e.spec.target || "–"),
      td(e.last_run ? runLink(e.last_run.id) : "never"), td(e.last_run ? e.last_run.verdict || "–" : "–"),
      tdn(e.last_run ? perSecond(e.last_run.breaking_point) : "–"),
      td(e.regressions.length ? h("span", { class: "bad" }, e.regressions.map((r) => `${r.metric} ${r.direction}`).join(", ")) : "none"))), { id: "experiments" })
    : h("p", { class: "muted" }, "No experiments (loadlab serve --experiments FILE)."));
  main.append(h("h2", {}, "Recent runs"), runsTable(runs), h("p", {}, h("a", { href: "/ui/history" }, "All runs…")));
}

async function stop(id, button) {
  if (button) button.disabled = true;
  try {
    await api(`/runs/${encodeURIComponent(id)}/stop`, { method: "PUT" });
  } catch (error) {
    problem(`Could not stop ${id}: ${error.message}`);
    if (button) button.disabled = false;
  }
}

function runsTable(runs, selectable) {
  return table([selectable ? h("th", { scope: "col" }, "compare") : null, "run", "plan", "experiment", "created", "outcome", "verdict", "breaking point", "duration"].filter(Boolean),
    runs.map((run) => h("tr", { "data-run": run.id },
      selectable ? td(h("input", { type: "checkbox", name: "pick", value: run.id, "aria-label": `compare ${run.id}` })) : null,
      td(runLink(run.id)), td(run.plan || run.target || "–"), td(run.experiment || "–"), td(when(run.created_at)),
      td(outcomeBadge(run)), td(run.verdict || "–"), tdn(perSecond(run.breaking_point), "breaking_point"), tdn(seconds(run.duration_seconds)))),
    { id: "runs" });
}

async function history(main) {
  const query = new URLSearchParams(location.search);
  const lab = await api("/topology").catch(() => null);
  main.append(h("h1", {}, "History"));
  const value = (name) => query.get(name) || "";
  const form = h("form", { class: "inline", method: "get", action: "/ui/history", id: "filters" },
    h("label", {}, "plan", h("select", { name: "plan" }, h("option", { value: "" }, "any"),
      Object.keys((lab && lab.plans) || {}).map((name) => h("option", { value: name, selected: value("plan") === name }, name)))),
    h("label", {}, "experiment", h("input", { name: "experiment", value: value("experiment"), size: 12 })),
    h("label", {}, "verdict", h("select", { name: "outcome" }, h("option", { value: "" }, "any"),
      ["held", "threshold", "interrupted", "failed", "timeout", "cancelled", "incomplete"].map((o) => h("option", { value: o, selected: value("outcome") === o }, o)))),
    h("label", {}, "from (date)", h("input", { type: "date", name: "since", value: value("since") })),
    h("label", {}, "until (date)", h("input", { type: "date", name: "until", value: value("until") })),
    h("button", { type: "submit" }, "Filter"));
  main.append(form);
  const filter = new URLSearchParams();
  for (const [key, v] of query) if (v && ["plan", "experiment", "outcome", "since", "until"].includes(key)) filter.set(key, v);
  filter.set("limit", "200");
  const runs = await listRuns(filter);
  const compare = h("button", { class: "primary", disabled: true, id: "compare" }, "Compare the two selected runs");
  main.append(h("p", {}, `${runs.length} run${runs.length === 1 ? "" : "s"}${runs.length === 200 ? " (the newest 200)" : ""}. `, compare));
  const list = runsTable(runs, true);
  main.append(list);
  const picked = () => [...list.querySelectorAll("input[name=pick]:checked")].map((box) => box.value);
  list.addEventListener("change", () => { compare.disabled = picked().length !== 2; });
  compare.addEventListener("click", () => {
    const [b, a] = picked(); // newest first: the older one is A
    location.href = `/ui/compare?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`;
  });
}

async function runPage(main) {
  const id = decodeURIComponent(location.pathname.split("/").pop());
  let detail = await api(`/runs/${encodeURIComponent(id)}`);
  const config = await api("/ui/config.json");
  const data = { run: detail.run, seconds: detail.seconds, steps: detail.steps, signals: detail.signals, request: detail.request };
  const head = h("div", {});
  const now = h("section", { id: "now" });
  const charts = h("section", { id: "charts" });
  const steps = h("section", {});
  const signals = h("section", {});
  const end = h("section", { id: "finished" });
  main.append(head, now, h("h2", {}, "Charts"), charts, h("h2", {}, "Steps and their verdicts"), steps,
    h("h2", {}, isFinal(data.run.state) ? "Bottleneck signals, the last reading" : "Bottleneck signals, live"), signals, end);

  function drawHead() {
    const run = data.run;
    put(head, 
      h("h1", {}, `Run ${run.id}`),
      h("p", {}, `Plan `, h("strong", {}, run.plan || run.target || "–"), ` · `, h("span", { id: "state", "data-state": run.state }, run.state), " ",
        outcomeBadge(run), ` · created ${when(run.created_at)}`, run.duration_seconds ? ` · ran ${seconds(run.duration_seconds)}` : "",
        " ", isFinal(run.state) ? null : h("button", { class: "danger", id: "stop", onclick: (e) => stop(run.id, e.target) }, "Stop")),
      run.description ? h("p", { class: "muted" }, run.description) : null,
      h("p", { class: "verdict", id: "verdict" }, verdictWords(run)),
      run.error ? h("p", { class: "bad" }, run.error) : null);
  }
  function drawNow() {
    const rows = data.seconds.filter(Boolean);
    const last = rows[rows.length - 1];
    if (!last) { put(now, h("p", { class: "muted" }, isFinal(data.run.state) ? "No seconds were recorded." : "Waiting for the first second…")); return; }
    const totals = {};
    for (const r of rows) for (const [kind, n] of Object.entries(r.errors_by_kind || {})) totals[kind] = (totals[kind] || 0) + n;
    const dropped = rows.reduce((sum, r) => sum + r.dropped, 0);
    // Each figure carries its raw value too (data-value), as the API gave it.
    const cell = (label, field, value) => h("div", {}, h("dt", {}, label),
      h("dd", { "data-field": field, "data-value": last[field] === null || last[field] === undefined ? "" : JSON.stringify(last[field]) }, value));
    const finished = data.steps.filter(Boolean);
    put(now, 
      h("h2", {}, isFinal(data.run.state) ? `The last second (${last.second} s)` : `Now: second ${last.second}, ${last.step}`),
      h("dl", { class: "figures", "data-second": last.second, "data-position": data.seconds.lastIndexOf(last) },
        cell("second", "second", String(last.second)), cell("current step", "step", last.step),
        cell("offered", "offered_rate", perSecond(last.offered_rate)), cell("achieved", "completed", perSecond(last.completed)),
        cell("p50 (corrected)", "p50_ms", ms(last.p50_ms)), cell("p90 (corrected)", "p90_ms", ms(last.p90_ms)),
        cell("p99 (corrected)", "p99_ms", ms(last.p99_ms)), cell("p99 (uncorrected)", "p99_uncorrected_ms", ms(last.p99_uncorrected_ms)),
        cell("errors this second", "errors", num(last.errors, 0)), cell("dropped this second", "dropped", num(last.dropped, 0)),
        cell("schedule lag p99", "lag_p99_ms", ms(last.lag_p99_ms)), h("div", {}, h("dt", {}, "steps finished"), h("dd", { "data-field": "steps" }, String(finished.length)))),
      h("p", { id: "errors-by-kind" }, "Errors by kind so far: ", Object.keys(totals).length
        ? Object.entries(totals).map(([kind, n]) => `${kind} ${n}`).join(", ") : "none", `; dropped so far: ${dropped}.`),
      (last.agents || []).length ? table(["agent", "sent", "ok", "errors", "dropped", "share of sent", "lag p99"], last.agents.map((a) => h("tr", {},
        td(a.agent), tdn(num(a.sent, 0)), tdn(num(a.ok, 0)), tdn(num(a.errors, 0)), tdn(num(a.dropped, 0)),
        tdn(percent(last.sent ? a.sent / last.sent : null)), tdn(ms(a.lag_p99_ms)))), { id: "agents" }) : null);
  }
  function drawAll() {
    drawHead();
    drawNow();
    put(charts, runCharts(data));
    put(steps, data.steps.filter(Boolean).length ? stepsTable(data.steps) : h("p", { class: "muted" }, "No step has finished yet."));
    const samples = data.signals.filter(Boolean);
    put(signals, signalsTable(samples[samples.length - 1]));
  }
  function drawEnd() {
    put(end, finishedView(detail, config));
  }

  drawAll();
  if (isFinal(data.run.state)) { drawEnd(); return; }
  // Live: everything so far is replayed by the stream, each event at its position.
  let pending = false;
  const redraw = () => { if (!pending) { pending = true; setTimeout(() => { pending = false; drawAll(); }, 50); } };
  const source = new EventSource(`/runs/${encodeURIComponent(id)}/events`);
  const at = (list, event) => { list[Number(event.lastEventId)] = JSON.parse(event.data); redraw(); };
  source.addEventListener("second", (event) => at(data.seconds, event));
  source.addEventListener("step", (event) => at(data.steps, event));
  source.addEventListener("signals", (event) => at(data.signals, event));
  source.addEventListener("state", async (event) => {
    data.run = JSON.parse(event.data);
    redraw();
    if (isFinal(data.run.state)) {
      source.close();
      detail = await api(`/runs/${encodeURIComponent(id)}`);
      Object.assign(data, { run: detail.run, seconds: detail.seconds, steps: detail.steps, signals: detail.signals });
      drawAll();
      drawEnd();
    }
  });
  source.onerror = () => { if (source.readyState === EventSource.CLOSED) problem("The live stream closed; reload the page."); };
}

function verdictWords(run) {
  if (!isFinal(run.state)) return run.state === "created" ? "Queued: it starts when the runs before it have ended." : "Running: the verdict comes when the search ends.";
  const parts = [];
  if (run.verdict) parts.push(`Verdict: ${run.verdict}.`);
  if (isNum(run.breaking_point)) parts.push(`It held ${perSecond(run.breaking_point)}${isNum(run.broken_rate) ? ` and broke at ${perSecond(run.broken_rate)}` : ""}.`);
  return parts.join(" ") || run.state;
}

function finishedView(detail, config) {
  const run = detail.run;
  const out = [h("h2", {}, "Breaking point")];
  const bp = detail.breaking_point;
  out.push(bp
    ? h("p", { class: "verdict", id: "breaking-point" }, `Breaking point: ${num(bp.rate, 0)} ${bp.unit || "requests/s"} held the SLO`,
      isNum(bp.broken_rate) ? `; ${num(bp.broken_rate, 0)} ${bp.unit || "requests/s"} broke it (${(bp.reason || []).join("; ")})` : "; nothing broke it", ".")
    : h("p", { class: "muted", id: "breaking-point" }, "No breaking point was found (the search did not reach one, or the run did not finish)."));
  out.push(h("h2", {}, "Bottleneck"));
  const b = detail.bottlenecks;
  if (b) {
    out.push(h("p", { class: "verdict", id: "bottleneck" }, b.verdict || "no verdict"),
      table(["rank", "resource", "reading", "while it held", "when it broke", "limit", "share of limit", "growth"], (b.ranking || []).map((s, i) => h("tr", {},
        tdn(String(i + 1)), td(s.resource), td(s.reading), tdn(num(s.held, 3)), tdn(num(s.broke, 3)), tdn(num(s.limit, 3)),
        tdn(percent(s.saturation)), tdn(isNum(s.growth) ? num(s.growth, 3) : s.error ? "error" : "–"))), { id: "ranking" }));
  } else out.push(h("p", { class: "muted", id: "bottleneck" }, "No bottleneck analysis (no Prometheus, or no breaking point)."));
  if (detail.merged) {
    const c = detail.merged.corrected_ok.percentiles_ms, u = detail.merged.uncorrected_ok.percentiles_ms;
    out.push(h("h2", {}, "Latency over the whole run (merged histograms)"), table(["", "requests", "p50", "p90", "p99", "max"], [
      h("tr", {}, td("corrected (from the intended send)"), tdn(num(detail.merged.corrected_ok.count, 0)), tdn(ms(c.p50)), tdn(ms(c.p90)), tdn(ms(c.p99)), tdn(ms(c.max))),
      h("tr", {}, td("uncorrected (from the actual send)"), tdn(num(detail.merged.uncorrected_ok.count, 0)), tdn(ms(u.p50)), tdn(ms(u.p90)), tdn(ms(u.p99)), tdn(ms(u.max)))]));
  }
  const base = `/runs/${encodeURIComponent(run.id)}`;
  out.push(h("h2", {}, "Downloads"), h("ul", { id: "downloads" },
    h("li", {}, h("a", { href: `${base}/summary.json` }, "summary.json"), " — loadgen's summary"),
    h("li", {}, h("a", { href: `${base}/seconds.csv` }, "seconds.csv"), " — every second"),
    h("li", {}, h("a", { href: `${base}/report.html` }, "report.html"), " — the static report"),
    h("li", {}, h("a", { href: base }, "the run as JSON")),
    (detail.files || []).map((name) => h("li", {}, h("a", { href: `${base}/files/${encodeURIComponent(name)}` }, name)))));
  if (config.grafana && run.started_at) {
    const from = new Date(run.started_at).getTime() - 30000;
    const to = run.finished_at ? new Date(run.finished_at).getTime() + 30000 : "now";
    out.push(h("h2", {}, "Grafana"), h("ul", { id: "grafana" }, config.dashboards.map((d) =>
      h("li", {}, h("a", { href: `${config.grafana}/d/${encodeURIComponent(d.uid)}?from=${from}&to=${to}` }, d.title)))));
  }
  out.push(h("p", {}, h("a", { href: `/ui/history?plan=${encodeURIComponent(run.plan || "")}` }, "Other runs of this plan…")));
  return out;
}

async function experimentPage(main) {
  const name = decodeURIComponent(location.pathname.split("/").pop());
  const e = await api(`/experiments/${encodeURIComponent(name)}`);
  main.append(h("h1", {}, `Experiment ${e.name}`),
    h("p", {}, `Plan ${e.spec.plan || e.spec.target || "–"}; detection: change of at least ${percent(e.threshold)} with p < ${e.max_p_value}.`),
    h("p", { class: "verdict", id: "regressions" }, e.regressions.length
      ? `Regressed: ${e.regressions.map((r) => `${r.metric.replace(/_/g, " ")} ${r.direction} by ${percent(Math.abs(r.magnitude))} from run ${r.run_id}`).join("; ")}.`
      : "No regression: the present level of each figure is not worse than before its last change point."),
    h("button", { class: "primary", onclick: async (ev) => {
      ev.target.disabled = true;
      try { const run = await api(`/experiments/${encodeURIComponent(name)}/run`, { method: "POST" }); location.href = `/ui/runs/${encodeURIComponent(run.id)}`; }
      catch (error) { problem(error.message); ev.target.disabled = false; }
    } }, "Run it now"));
  const units = { breaking_point: "breaking point (requests/s)", p99_at_reference: "p99 at the reference rate (ms)" };
  for (const [metric, series] of Object.entries(e.series)) {
    if (!series.length) continue;
    const index = new Map(series.map((p, i) => [p.run_id, i + 1]));
    const marks = e.change_points.filter((c) => c.metric === metric).map((c) => ({ x: index.get(c.run_id) - 0.5, label: `${c.direction} ${percent(Math.abs(c.magnitude))}` }));
    main.append(h("h2", {}, units[metric] || metric), figure(`${units[metric] || metric} per run, change points marked`, lineChart({
      label: `${metric} trend`, x: "run (oldest first)", y: units[metric] || metric, series: [{ name: metric.replace(/_/g, " "), dots: true, points: series.map((p, i) => [i + 1, p.value]) }], marks,
    }), `trend-${metric}`));
  }
  main.append(h("h2", {}, "Change points"), e.change_points.length
    ? table(["figure", "from run", "direction", "magnitude", "p-value", "runs before", "runs after"], e.change_points.map((c) => h("tr", {},
      td(c.metric), td(runLink(c.run_id)), td(c.direction), tdn(percent(c.magnitude)), tdn(c.point && c.point.test ? c.point.test.p_value.toExponential(2) : "–"),
      tdn(String(c.runs_before.length)), tdn(String(c.runs_after.length)))), { id: "change-points" })
    : h("p", { class: "muted", id: "change-points" }, "No change point detected."));
  main.append(h("p", {}, h("a", { href: `/ui/history?experiment=${encodeURIComponent(name)}` }, "Every run of this experiment…")));
}

async function comparePage(main) {
  const query = new URLSearchParams(location.search);
  const a = query.get("a") || "last~1", b = query.get("b") || "last";
  const c = await api(`/compare?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`);
  const [da, db] = await Promise.all([api(`/runs/${encodeURIComponent(c.a.run.id)}`), api(`/runs/${encodeURIComponent(c.b.run.id)}`)]);
  main.append(h("h1", {}, "Two runs side by side"), h("p", { class: "verdict", id: "conclusion" }, c.conclusion));
  const side = (s) => [runLink(s.run.id), s.run.plan || s.run.target || "–", when(s.run.started_at), s.run.verdict || s.run.state,
    perSecond(s.run.breaking_point), perSecond(s.run.broken_rate), s.bottleneck || "–",
    s.top_signals.map(([name, v]) => `${name} ${percent(v)}`).join(", ") || "–"];
  const labels = ["run", "plan", "started", "verdict", "breaking point", "broke at", "bottleneck", "top signals (share of limit)"];
  const A = side(c.a), B = side(c.b);
  main.append(table(["", "A", "B"], labels.map((label, i) => h("tr", {}, h("th", { scope: "row" }, label), td(A[i]), td(B[i]))), { id: "sides" }));
  if (isNum(c.breaking_point_change)) main.append(h("p", {}, `Breaking point change from A to B: ${num(c.breaking_point_change * 100, 1)} %.`));
  main.append(h("h2", {}, "Latency at equal offered rates"), c.rates.length
    ? table(["offered", "A achieved", "A p50", "A p99", "A held", "B achieved", "B p50", "B p99", "B held", "KS p-value", "median shift", "latency"],
      c.rates.map((r) => h("tr", {}, tdn(perSecond(r.offered_rate)), tdn(perSecond(r.a.achieved_rate)), tdn(ms(r.a.p50_ms)), tdn(ms(r.a.p99_ms)), td(r.a.held ? "held" : "broke"),
        tdn(perSecond(r.b.achieved_rate)), tdn(ms(r.b.p50_ms)), tdn(ms(r.b.p99_ms)), td(r.b.held ? "held" : "broke"),
        tdn(r.ks ? r.ks.p_value.toExponential(2) : "–"), tdn(isNum(r.shift) ? `${r.shift > 0 ? "+" : ""}${num(r.shift * 100, 0)} %` : "–"), td(r.latency))), { id: "rates" })
    : h("p", { class: "muted" }, "The two runs share no offered rate."), h("p", { class: "muted" }, c.method));
  const points = (d) => d.steps.map((s) => [s.offered_rate, s.corrected_ms && s.corrected_ms.p99]).sort((x, y) => x[0] - y[0]);
  main.append(figure("p99 (corrected) at each offered rate", lineChart({
    label: "p99 latency by offered rate for both runs", x: "offered rate (requests/s)", y: "p99 latency (ms)",
    series: [{ name: `A ${c.a.run.id}`, points: points(da), dots: true }, { name: `B ${c.b.run.id}`, points: points(db), dots: true, dash: "5 3" }],
  }), "chart-compare"));
  main.append(h("h2", {}, "Bottleneck rankings"), h("div", { class: "cols" }, [["A", da], ["B", db]].map(([name, d]) => h("div", {},
    h("h3", {}, `${name}: ${d.bottlenecks ? d.bottlenecks.verdict : "no analysis"}`),
    d.bottlenecks ? table(["rank", "resource", "share of limit"], d.bottlenecks.ranking.map((s, i) => h("tr", {}, tdn(String(i + 1)), td(s.resource), tdn(percent(s.saturation))))) : null))));
}

// ---------- start ----------

const PAGES = { overview, history, run: runPage, experiment: experimentPage, compare: comparePage };

document.addEventListener("DOMContentLoaded", async () => {
  const main = document.getElementById("main");
  const page = PAGES[document.body.dataset.page];
  try {
    main.replaceChildren();
    await page(main);
    document.body.dataset.ready = "true";
  } catch (error) {
    main.append(h("p", { class: "bad", id: "error" }, `This page could not be shown: ${error.message}`));
    document.body.dataset.ready = "error";
  }
});
