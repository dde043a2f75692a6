#!/usr/bin/env python3
"""Writes loadlab's Grafana dashboards (monitoring/grafana/dashboards/*.json, or into
the directory given as the first argument).

Dashboards are generated, not hand-edited: each panel is one line below (title, unit,
queries), and the layout, the datasource variable and the JSON boilerplate come from
one place. Run it after changing a panel; a test checks that the committed JSON is
what this script writes, and another evaluates every query against a real Prometheus.

Everything is built with Grafana's foundation SDK, whose builders and types are
generated from Grafana's dashboard schema (the version pinned in requirements.txt).
A misspelled option or unit is a missing attribute, and an option a panel kind does
not have (a legend on a stat panel) a missing method: both stop the script. Before it
writes anything it also type-checks itself against the SDK (mypy --strict), which
catches a wrong type where Python would not (a string where the schema has an enum).
It runs in the project's virtual environment:

    "$(scripts/python-venv monitoring/grafana/requirements.txt)" monitoring/grafana/generate.py

Every query uses the `$datasource` variable (no hard-coded UIDs). `$__rate_interval`
is Grafana's; the live test substitutes 1m for it.
"""
import json
import pathlib
import subprocess
import sys
from typing import Callable

try:
    from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
    from grafana_foundation_sdk.builders.common import VizLegendOptions, VizTooltipOptions
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import units
    from grafana_foundation_sdk.models.common import (LegendDisplayMode, LegendPlacement, SortOrder,
                                                      TooltipDisplayMode)
    from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableHide
except ModuleNotFoundError as missing:
    sys.exit(f"{missing}: run this with the project's Python, as in\n"
             '  "$(scripts/python-venv monitoring/grafana/requirements.txt)" monitoring/grafana/generate.py')

HERE = pathlib.Path(__file__).parent
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")

Query = prometheus.Dataquery
Kind = Callable[[], timeseries.Panel | stat.Panel]


def q(expr: str, legend: str = "") -> Query:
    return prometheus.Dataquery().expr(expr).legend_format(legend).datasource(DATASOURCE)


def panel(title: str, unit: str, *queries: Query, kind: Kind = timeseries.Panel) -> timeseries.Panel | stat.Panel:
    """A panel: title, Grafana unit (a constant of the SDK's `units`), and queries."""
    built = kind().title(title).unit(unit).datasource(DATASOURCE)
    if isinstance(built, timeseries.Panel):
        built.legend(VizLegendOptions().display_mode(LegendDisplayMode.LIST)
                     .placement(LegendPlacement.BOTTOM).show_legend(True))
        # Grafana's own default; the SDK's would sort the tooltip ascending.
        built.tooltip(VizTooltipOptions().mode(TooltipDisplayMode.SINGLE).sort(SortOrder.NONE))
    for n, query in enumerate(queries):
        built.with_target(query.ref_id(chr(ord("A") + n)))
    return built


Row = tuple[str, list[timeseries.Panel | stat.Panel]]


def board(uid: str, title: str, description: str, rows: list[Row]) -> dashboard.Dashboard:
    """Rows of up to three panels side by side, 8 high; the SDK places each panel after
    the one before and wraps at Grafana's 24 columns. Rows stay expanded, so their
    panels follow them at the top level (a row holds panels only when collapsed).

    The breaking-point annotation marks when loadgen's breaking point changes. It has
    no titleFormat/textFormat: the Prometheus datasource reads them, but they are not
    in the dashboard schema, so the SDK has no way to write them (and the old text,
    "{{value}} requests/s held", showed "value requests/s held": Grafana fills in
    label values only, and the expression's value is a count of changes anyway)."""
    built = (
        dashboard.Dashboard(title).uid(uid).description(description).tags(["loadlab"])
        .timezone("utc").version(1).refresh("10s").time("now-30m", "now")
        .with_variable(dashboard.DatasourceVariable("datasource").label("Prometheus")
                       .type("prometheus").hide(VariableHide.DONT_HIDE))
        .annotation(dashboard.AnnotationQuery().name("breaking point").datasource(DATASOURCE)
                    .enable(True).icon_color("red").expr("changes(loadgen_breaking_point_rate[1m]) > 0"))
    )
    panel_id = 1
    for row_title, row_panels in rows:
        built.with_row(dashboard.Row(row_title).id(panel_id))
        panel_id += 1
        width = 24 // max(1, min(len(row_panels), 3))
        for spec in row_panels:
            built.with_panel(spec.id(panel_id).height(8).span(width))
            panel_id += 1
    return built


RATE = "$__rate_interval"

DASHBOARDS = [
    board("loadlab-overview", "loadlab: run overview",
              "The one screen: offered vs achieved load, corrected latency, errors, drops, and each host's most saturated resource.", [
        ("Load", [
            panel("Offered vs achieved (requests/s)", units.RequestsPerSecond,
                  q("sum(loadgen_offered_rate)", "offered"),
                  q(f'sum(rate(loadgen_requests_total{{outcome="ok"}}[{RATE}]))', "achieved")),
            panel("Corrected latency (due time to answer)", units.Seconds,
                  q(f"histogram_quantile(0.5, sum by (le) (rate(loadgen_latency_seconds_bucket[{RATE}])))", "p50"),
                  q(f"histogram_quantile(0.99, sum by (le) (rate(loadgen_latency_seconds_bucket[{RATE}])))", "p99")),
            panel("Errors and dropped (requests/s)", units.RequestsPerSecond,
                  # With no errors there is no error series: show an explicit zero.
                  q(f'sum by (outcome) (rate(loadgen_requests_total{{outcome!="ok"}}[{RATE}])) '
                    f'or label_replace(vector(0), "outcome", "none", "", "")', "{{outcome}}"),
                  q(f"sum(rate(loadgen_dropped_total[{RATE}]))", "dropped")),
        ]),
        ("What saturates first", [
            panel("CPU busy per host", units.PercentUnit, q("instance:node_cpu_utilisation:rate1m", "{{instance}}")),
            panel("Run queue per CPU (load1 / CPUs)", units.NoUnit, q("instance:node_load1_per_cpu:ratio", "{{instance}}")),
            panel("Database connections used", units.PercentUnit, q("instance:pg_connections_utilisation:ratio", "{{instance}}")),
            panel("device-api pool wait p99", units.Seconds, q("job:device_api_db_pool_acquire_seconds:p99_1m", "{{job}}")),
            panel("Generator schedule lag p99", units.Seconds, q("job:loadgen_schedule_lag_seconds:p99_1m", "{{job}}")),
            panel("Breaking point (requests/s held)", units.RequestsPerSecond, q("max(loadgen_breaking_point_rate)", "breaking point"), kind=stat.Panel),
        ]),
    ]),
    board("loadlab-device-api", "loadlab: device-api", "RED per route, ingest, database pool, runtime and process.", [
        ("Requests", [
            panel("Requests by route and status", units.RequestsPerSecond, q("route:device_api_requests:rate1m", "{{route}} {{status}}")),
            panel("Latency p99 by route", units.Seconds, q("route:device_api_request_duration_seconds:p99_1m", "{{route}}")),
            panel("Error ratio (5xx)", units.PercentUnit, q("job:device_api_request_errors:ratio_rate5m", "{{job}}")),
            panel("In flight", units.NoUnit, q("sum by (instance) (device_api_requests_in_flight)", "{{instance}}")),
        ]),
        ("Ingest", [
            panel("Measurements committed", units.RowsPerSecond, q(f"sum(rate(device_api_measurements_ingested_total[{RATE}]))", "rows/s")),
            panel("Batch size p50 / p99", units.NoUnit,
                  q(f"histogram_quantile(0.5, sum by (le) (rate(device_api_batch_rows_bucket[{RATE}])))", "p50"),
                  q(f"histogram_quantile(0.99, sum by (le) (rate(device_api_batch_rows_bucket[{RATE}])))", "p99")),
            panel("Batch commit p99", units.Seconds,
                  q(f"histogram_quantile(0.99, sum by (le) (rate(device_api_batch_commit_duration_seconds_bucket[{RATE}])))", "p99")),
        ]),
        ("Database pool", [
            panel("Pool connections", units.NoUnit,
                  q("sum(device_api_db_pool_in_use_connections)", "in use"),
                  q("sum(device_api_db_pool_idle_connections)", "idle"),
                  q("sum(device_api_db_pool_max_connections)", "max")),
            panel("Pool acquire wait p99", units.Seconds, q("job:device_api_db_pool_acquire_seconds:p99_1m", "{{job}}")),
            panel("Storage engine", units.NoUnit, q("device_api_storage_engine_info", "{{engine}}"), kind=stat.Panel),
        ]),
        ("Runtime and process", [
            panel("Tokio workers busy", units.PercentUnit, q(f"sum by (instance) (rate(device_api_tokio_worker_busy_seconds[{RATE}]))", "{{instance}}")),
            panel("Resident memory", units.BytesIEC, q('process_resident_memory_bytes{job="device-api"}', "{{instance}}")),
            panel("CPU", units.PercentUnit, q(f'rate(process_cpu_seconds_total{{job="device-api"}}[{RATE}])', "{{instance}}")),
            panel("Waiting for a CPU (share of runnable time)", units.PercentUnit,
                  q(f"rate(device_api_cpu_run_queue_wait_seconds[{RATE}]) / (rate(device_api_cpu_run_queue_wait_seconds[{RATE}]) + rate(device_api_cpu_run_seconds[{RATE}]))", "{{instance}}")),
        ]),
    ]),
    board("loadlab-database", "loadlab: database", "PostgreSQL: connections, transactions, rows, locks, checkpoints, cache.", [
        ("Activity", [
            panel("Connections by state", units.NoUnit, q("sum by (state) (pg_stat_activity_count)", "{{state}}")),
            panel("Active backends by wait event", units.NoUnit,
                  q("sum by (wait_event_type) (pg_backends_active)", "{{wait_event_type}}")),
            panel("Transactions", units.OpsPerSecond, q("instance:pg_transactions:rate1m", "{{instance}}")),
            panel("Rows in / out", units.RowsPerSecond,
                  q(f"sum(rate(pg_stat_database_tup_inserted[{RATE}]))", "inserted"),
                  q(f"sum(rate(pg_stat_database_tup_fetched[{RATE}]))", "fetched")),
        ]),
        ("Pressure", [
            panel("Locks by mode", units.NoUnit, q("sum by (mode) (pg_locks_count)", "{{mode}}")),
            panel("Checkpoints", units.OpsPerSecond,
                  q(f"rate(pg_stat_bgwriter_checkpoints_timed_total[{RATE}])", "timed"),
                  q(f"rate(pg_stat_bgwriter_checkpoints_req_total[{RATE}])", "requested")),
            panel("Cache hit ratio", units.PercentUnit,
                  q(f"sum(rate(pg_stat_database_blks_hit[{RATE}])) / (sum(rate(pg_stat_database_blks_hit[{RATE}])) + sum(rate(pg_stat_database_blks_read[{RATE}])))", "hit")),
        ]),
    ]),
    board("loadlab-hosts", "loadlab: hosts", "USE per host: CPU (with run queue and pressure), memory, disk, network, file descriptors.", [
        ("CPU", [
            panel("CPU busy", units.PercentUnit, q("instance:node_cpu_utilisation:rate1m", "{{instance}}")),
            panel("Run queue per CPU", units.NoUnit, q("instance:node_load1_per_cpu:ratio", "{{instance}}")),
            panel("CPU pressure (time waiting)", units.PercentUnit, q("instance:node_pressure_cpu_waiting:rate1m", "{{instance}}")),
        ]),
        ("Memory, disk, network", [
            panel("Memory used", units.PercentUnit, q("instance:node_memory_utilisation:ratio", "{{instance}}")),
            panel("Disk busy", units.PercentUnit, q("instance:node_disk_io_time:rate1m", "{{instance}}")),
            panel("Network", units.BytesPerSecondSI,
                  q("instance:node_network_receive_bytes:rate1m", "{{instance}} in"),
                  q("instance:node_network_transmit_bytes:rate1m", "{{instance}} out")),
            panel("File descriptors used", units.PercentUnit, q("instance:node_filefd_utilisation:ratio", "{{instance}}")),
            panel("TCP sockets in use", units.NoUnit, q("node_sockstat_TCP_inuse", "{{instance}}")),
        ]),
    ]),
    board("loadlab-grpc-stress", "loadlab: grpc-stress", "Connections, RPCs by method and status, memory per component.", [
        ("RPCs", [
            panel("Open connections", units.NoUnit, q("sum by (instance) (grpc_stress_connections_open)", "{{instance}}")),
            panel("RPCs by method and code", units.RequestsPerSecond, q("method:grpc_stress_rpcs:rate1m", "{{method}} {{code}}")),
            panel("RPC latency p99", units.Seconds, q("method:grpc_stress_rpc_duration_seconds:p99_1m", "{{method}}")),
            panel("Error ratio", units.PercentUnit, q("method:grpc_stress_rpc_errors:ratio_rate1m", "{{method}}")),
            panel("Shed (RESOURCE_EXHAUSTED)", units.RequestsPerSecond, q(f"sum(rate(grpc_stress_rpcs_shed_total[{RATE}]))", "shed")),
        ]),
        ("Memory", [
            panel("Live heap vs ceiling", units.BytesIEC,
                  q("grpc_stress_live_heap_bytes", "{{instance}} live"),
                  q("grpc_stress_heap_ceiling_bytes", "{{instance}} ceiling")),
            panel("Resident memory", units.BytesIEC, q('process_resident_memory_bytes{job="grpc-stress"}', "{{instance}}")),
        ]),
    ]),
    board("loadlab-loadgen", "loadlab: loadgen", "Per scenario and request: rate, latency, lag, drops, and the generator's own saturation, per segment.", [
        ("Requests", [
            panel("Requests by request and outcome", units.RequestsPerSecond, q("request:loadgen_requests:rate1m", "{{scenario}} {{request}} {{outcome}}")),
            panel("Corrected latency p99 by scenario", units.Seconds, q("scenario:loadgen_latency_seconds:p99_1m", "{{scenario}}")),
            panel("Error ratio by scenario", units.PercentUnit, q("scenario:loadgen_request_errors:ratio_rate1m", "{{scenario}}")),
            panel("In flight per segment", units.NoUnit, q("loadgen_in_flight_requests", "{{segment}}")),
            panel("Offered rate per segment", units.RequestsPerSecond, q("loadgen_offered_rate", "{{segment}}")),
        ]),
        ("The generator itself", [
            panel("Schedule lag p99", units.Seconds, q("job:loadgen_schedule_lag_seconds:p99_1m", "{{job}}")),
            panel("Generator CPU", units.PercentUnit, q(f'rate(process_cpu_seconds_total{{job="loadgen"}}[{RATE}])', "{{instance}}")),
            panel("Current step", units.NoUnit, q("loadgen_current_step", "{{instance}}"), kind=stat.Panel),
        ]),
    ]),
]


def type_check() -> None:
    """mypy --strict on this file: a wrong type for a schema field fails here."""
    check = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-error-summary",
                            "--cache-dir", "/dev/null", __file__], capture_output=True, text=True)
    if check.returncode != 0:
        sys.exit(f"generate.py does not type-check against the SDK:\n{check.stdout}{check.stderr}")


def main() -> None:
    type_check()
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "dashboards"
    out.mkdir(exist_ok=True)
    for builder in DASHBOARDS:
        built = builder.build()
        text = json.dumps(built, cls=JSONEncoder, indent=2, sort_keys=True)
        (out / f"{built.uid}.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
