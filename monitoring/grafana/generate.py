#!/usr/bin/env python3
"""Writes loadlab's Grafana dashboards (monitoring/grafana/dashboards/*.json, or into
the directory given as the first argument).

Dashboards are generated, not hand-edited: each panel is one line below (title, unit,
queries), and the layout, the datasource variable and the JSON boilerplate come from
one place. Run it after changing a panel; a test checks that the committed JSON is
what this script writes, and another evaluates every query against a real Prometheus.

Every query uses the `$datasource` variable (no hard-coded UIDs). `$__rate_interval`
is Grafana's; the live test substitutes 1m for it.
"""
import json
import pathlib

HERE = pathlib.Path(__file__).parent


def panel(title, unit, *queries, kind="timeseries", legend=None):
    """A panel: title, Grafana unit, and (expr, legend) queries."""
    return {"title": title, "unit": unit, "queries": queries, "kind": kind}


def q(expr, legend=""):
    return (expr, legend)


def dashboard(uid, title, description, rows):
    panels, y, panel_id = [], 0, 1
    for row_title, row_panels in rows:
        panels.append({"type": "row", "title": row_title, "id": panel_id, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}})
        panel_id += 1
        y += 1
        width = 24 // max(1, min(len(row_panels), 3))
        for index, spec in enumerate(row_panels):
            x = (index % 3) * width
            if index and index % 3 == 0:
                y += 8
            panels.append({
                "type": spec["kind"],
                "title": spec["title"],
                "id": panel_id,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": {"h": 8, "w": width, "x": x, "y": y},
                "fieldConfig": {"defaults": {"unit": spec["unit"]}, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
                "targets": [
                    {"refId": chr(ord("A") + n), "expr": expr, "legendFormat": legend,
                     "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                    for n, (expr, legend) in enumerate(spec["queries"])
                ],
            })
            panel_id += 1
        y += 8
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["loadlab"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "templating": {"list": [{
            "name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
            "current": {}, "hide": 0, "refresh": 1,
        }]},
        "annotations": {"list": [{
            "name": "breaking point", "enable": True, "iconColor": "red",
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "expr": "changes(loadgen_breaking_point_rate[1m]) > 0",
            "titleFormat": "breaking point", "textFormat": "{{value}} requests/s held",
        }]},
        "panels": panels,
    }


RATE = "$__rate_interval"

DASHBOARDS = [
    dashboard("loadlab-overview", "loadlab: run overview",
              "The one screen: offered vs achieved load, corrected latency, errors, drops, and each host's most saturated resource.", [
        ("Load", [
            panel("Offered vs achieved (requests/s)", "reqps",
                  q("sum(loadgen_offered_rate)", "offered"),
                  q(f'sum(rate(loadgen_requests_total{{outcome="ok"}}[{RATE}]))', "achieved")),
            panel("Corrected latency (due time to answer)", "s",
                  q(f"histogram_quantile(0.5, sum by (le) (rate(loadgen_latency_seconds_bucket[{RATE}])))", "p50"),
                  q(f"histogram_quantile(0.99, sum by (le) (rate(loadgen_latency_seconds_bucket[{RATE}])))", "p99")),
            panel("Errors and dropped (requests/s)", "reqps",
                  # With no errors there is no error series: show an explicit zero.
                  q(f'sum by (outcome) (rate(loadgen_requests_total{{outcome!="ok"}}[{RATE}])) '
                    f'or label_replace(vector(0), "outcome", "none", "", "")', "{{outcome}}"),
                  q(f"sum(rate(loadgen_dropped_total[{RATE}]))", "dropped")),
        ]),
        ("What saturates first", [
            panel("CPU busy per host", "percentunit", q("instance:node_cpu_utilisation:rate1m", "{{instance}}")),
            panel("Run queue per CPU (load1 / CPUs)", "none", q("instance:node_load1_per_cpu:ratio", "{{instance}}")),
            panel("Database connections used", "percentunit", q("instance:pg_connections_utilisation:ratio", "{{instance}}")),
            panel("device-api pool wait p99", "s", q("job:device_api_db_pool_acquire_seconds:p99_1m", "{{job}}")),
            panel("Generator schedule lag p99", "s", q("job:loadgen_schedule_lag_seconds:p99_1m", "{{job}}")),
            panel("Breaking point (requests/s held)", "reqps", q("max(loadgen_breaking_point_rate)", "breaking point"), kind="stat"),
        ]),
    ]),
    dashboard("loadlab-device-api", "loadlab: device-api", "RED per route, ingest, database pool, runtime and process.", [
        ("Requests", [
            panel("Requests by route and status", "reqps", q("route:device_api_requests:rate1m", "{{route}} {{status}}")),
            panel("Latency p99 by route", "s", q("route:device_api_request_duration_seconds:p99_1m", "{{route}}")),
            panel("Error ratio (5xx)", "percentunit", q("job:device_api_request_errors:ratio_rate5m", "{{job}}")),
            panel("In flight", "none", q("sum by (instance) (device_api_requests_in_flight)", "{{instance}}")),
        ]),
        ("Ingest", [
            panel("Measurements committed", "rowsps", q(f"sum(rate(device_api_measurements_ingested_total[{RATE}]))", "rows/s")),
            panel("Batch size p50 / p99", "none",
                  q(f"histogram_quantile(0.5, sum by (le) (rate(device_api_batch_rows_bucket[{RATE}])))", "p50"),
                  q(f"histogram_quantile(0.99, sum by (le) (rate(device_api_batch_rows_bucket[{RATE}])))", "p99")),
            panel("Batch commit p99", "s",
                  q(f"histogram_quantile(0.99, sum by (le) (rate(device_api_batch_commit_duration_seconds_bucket[{RATE}])))", "p99")),
        ]),
        ("Database pool", [
            panel("Pool connections", "none",
                  q("sum(device_api_db_pool_in_use_connections)", "in use"),
                  q("sum(device_api_db_pool_idle_connections)", "idle"),
                  q("sum(device_api_db_pool_max_connections)", "max")),
            panel("Pool acquire wait p99", "s", q("job:device_api_db_pool_acquire_seconds:p99_1m", "{{job}}")),
            panel("Storage engine", "none", q("device_api_storage_engine_info", "{{engine}}"), kind="stat"),
        ]),
        ("Runtime and process", [
            panel("Tokio workers busy", "percentunit", q(f"sum by (instance) (rate(device_api_tokio_worker_busy_seconds[{RATE}]))", "{{instance}}")),
            panel("Resident memory", "bytes", q('process_resident_memory_bytes{job="device-api"}', "{{instance}}")),
            panel("CPU", "percentunit", q(f'rate(process_cpu_seconds_total{{job="device-api"}}[{RATE}])', "{{instance}}")),
            panel("Waiting for a CPU (share of runnable time)", "percentunit",
                  q(f"rate(device_api_cpu_run_queue_wait_seconds[{RATE}]) / (rate(device_api_cpu_run_queue_wait_seconds[{RATE}]) + rate(device_api_cpu_run_seconds[{RATE}]))", "{{instance}}")),
        ]),
    ]),
    dashboard("loadlab-database", "loadlab: database", "PostgreSQL: connections, transactions, rows, locks, checkpoints, cache.", [
        ("Activity", [
            panel("Connections by state", "none", q("sum by (state) (pg_stat_activity_count)", "{{state}}")),
            panel("Active backends by wait event", "none",
                  q("sum by (wait_event_type) (pg_backends_active)", "{{wait_event_type}}")),
            panel("Transactions", "ops", q("instance:pg_transactions:rate1m", "{{instance}}")),
            panel("Rows in / out", "rowsps",
                  q(f"sum(rate(pg_stat_database_tup_inserted[{RATE}]))", "inserted"),
                  q(f"sum(rate(pg_stat_database_tup_fetched[{RATE}]))", "fetched")),
        ]),
        ("Pressure", [
            panel("Locks by mode", "none", q("sum by (mode) (pg_locks_count)", "{{mode}}")),
            panel("Checkpoints", "ops",
                  q(f"rate(pg_stat_bgwriter_checkpoints_timed_total[{RATE}])", "timed"),
                  q(f"rate(pg_stat_bgwriter_checkpoints_req_total[{RATE}])", "requested")),
            panel("Cache hit ratio", "percentunit",
                  q(f"sum(rate(pg_stat_database_blks_hit[{RATE}])) / (sum(rate(pg_stat_database_blks_hit[{RATE}])) + sum(rate(pg_stat_database_blks_read[{RATE}])))", "hit")),
        ]),
    ]),
    dashboard("loadlab-hosts", "loadlab: hosts", "USE per host: CPU (with run queue and pressure), memory, disk, network, file descriptors.", [
        ("CPU", [
            panel("CPU busy", "percentunit", q("instance:node_cpu_utilisation:rate1m", "{{instance}}")),
            panel("Run queue per CPU", "none", q("instance:node_load1_per_cpu:ratio", "{{instance}}")),
            panel("CPU pressure (time waiting)", "percentunit", q("instance:node_pressure_cpu_waiting:rate1m", "{{instance}}")),
        ]),
        ("Memory, disk, network", [
            panel("Memory used", "percentunit", q("instance:node_memory_utilisation:ratio", "{{instance}}")),
            panel("Disk busy", "percentunit", q("instance:node_disk_io_time:rate1m", "{{instance}}")),
            panel("Network", "Bps",
                  q("instance:node_network_receive_bytes:rate1m", "{{instance}} in"),
                  q("instance:node_network_transmit_bytes:rate1m", "{{instance}} out")),
            panel("File descriptors used", "percentunit", q("instance:node_filefd_utilisation:ratio", "{{instance}}")),
            panel("TCP sockets in use", "none", q("node_sockstat_TCP_inuse", "{{instance}}")),
        ]),
    ]),
    dashboard("loadlab-grpc-stress", "loadlab: grpc-stress", "Connections, RPCs by method and status, memory per component.", [
        ("RPCs", [
            panel("Open connections", "none", q("sum by (instance) (grpc_stress_connections_open)", "{{instance}}")),
            panel("RPCs by method and code", "reqps", q("method:grpc_stress_rpcs:rate1m", "{{method}} {{code}}")),
            panel("RPC latency p99", "s", q("method:grpc_stress_rpc_duration_seconds:p99_1m", "{{method}}")),
            panel("Error ratio", "percentunit", q("method:grpc_stress_rpc_errors:ratio_rate1m", "{{method}}")),
            panel("Shed (RESOURCE_EXHAUSTED)", "reqps", q(f"sum(rate(grpc_stress_rpcs_shed_total[{RATE}]))", "shed")),
        ]),
        ("Memory", [
            panel("Live heap vs ceiling", "bytes",
                  q("grpc_stress_live_heap_bytes", "{{instance}} live"),
                  q("grpc_stress_heap_ceiling_bytes", "{{instance}} ceiling")),
            panel("Resident memory", "bytes", q('process_resident_memory_bytes{job="grpc-stress"}', "{{instance}}")),
        ]),
    ]),
    dashboard("loadlab-loadgen", "loadlab: loadgen", "Per scenario and request: rate, latency, lag, drops, and the generator's own saturation, per segment.", [
        ("Requests", [
            panel("Requests by request and outcome", "reqps", q("request:loadgen_requests:rate1m", "{{scenario}} {{request}} {{outcome}}")),
            panel("Corrected latency p99 by scenario", "s", q("scenario:loadgen_latency_seconds:p99_1m", "{{scenario}}")),
            panel("Error ratio by scenario", "percentunit", q("scenario:loadgen_request_errors:ratio_rate1m", "{{scenario}}")),
            panel("In flight per segment", "none", q("loadgen_in_flight_requests", "{{segment}}")),
            panel("Offered rate per segment", "reqps", q("loadgen_offered_rate", "{{segment}}")),
        ]),
        ("The generator itself", [
            panel("Schedule lag p99", "s", q("job:loadgen_schedule_lag_seconds:p99_1m", "{{job}}")),
            panel("Generator CPU", "percentunit", q(f'rate(process_cpu_seconds_total{{job="loadgen"}}[{RATE}])', "{{instance}}")),
            panel("Current step", "none", q("loadgen_current_step", "{{instance}}"), kind="stat"),
        ]),
    ]),
]


def main():
    import sys
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "dashboards"
    out.mkdir(exist_ok=True)
    for board in DASHBOARDS:
        (out / f"{board['uid']}.json").write_text(json.dumps(board, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
