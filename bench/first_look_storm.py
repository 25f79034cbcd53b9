"""First looks under an alert storm: from an Alertmanager POST to the incident being visible and to
its first look being done, for a steady trickle and for storms of new incidents at once.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/opsportal REDIS_URL=redis://127.0.0.1:6379/0 \
        .venv/bin/python bench/first_look_storm.py [--scenarios steady,storm100,storm500] [--quick]

The setup of issue #16: a throwaway database (`<name>_bench_storm`), gunicorn with 2 workers
(gunicorn.conf.py, as the Procfile), one Celery worker with 2 prefork processes on every queue,
PostgreSQL and Redis. A service "bench-target" (a local HTTP server this script starts, the bench
database, the Redis of REDIS_URL) and one runbook answering the alert `BenchFirstLook` with four
read-only checks: HTTP GET /health, two SQL (connections by state; a count on an incidents table),
Redis PING. Every POST is a new alert group (10 alerts), so every POST opens an incident and
starts one first look.

Scenarios: `steady` (30 alerts, one every 2 s), `storm100` and `storm500` (that many groups
posted concurrently). `--quick` shrinks them (8, 20, 100) to check that the script works.

Figures come from the rows' own timestamps (one clock: every process is on this host), measured
from the moment each POST was sent: incident visible = its delivery's `processed_at` (set in the
applying transaction, just before commit); first look done = the run's `finished_at`. The
breakdown adds the worker's task start/end, recorded by bench/task_clock.py (loaded with -I),
because no row says when a delivery task began. The machine may be shared: compare runs only as
ratios measured in one run.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

ALERTNAME = "BenchFirstLook"
SCENARIOS = {"steady": ("steady", 30, 2.0), "storm100": ("storm", 100, 0), "storm500": ("storm", 500, 0)}
QUICK = {"steady": 8, "storm100": 20, "storm500": 100}
TARGETS = {"steady": ("done", 95, 0.5), "storm100": ("done", 95, 10.0)}  # issue #16, in seconds
HEALTH_SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Health(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@dataclass
class Post:
    group: str
    sent: float
    status: int = 0
    answered: float = 0.0


@dataclass
class Result:
    name: str
    posts: list[Post]
    duration: float = 0.0
    visible: list[float] = field(default_factory=list)
    done: list[float] = field(default_factory=list)
    breakdown: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    tasks: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    missing_incident: int = 0
    missing_first_look: int = 0
    run_states: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    load: tuple[str, str] = ("", "")
    floor_latency: list[float] = field(default_factory=list)
    floor_drain: float | None = None
    floor_tasks: int = 0


def start_health_server() -> tuple[subprocess.Popen, int]:
    server = subprocess.Popen([sys.executable, "-c", HEALTH_SERVER], stdout=subprocess.PIPE, text=True)
    return server, int(server.stdout.readline())


def make_fixtures(health_port: int, database_url: str, redis_url: str) -> str:
    """The target service, the first-look runbook answering ALERTNAME and the integration; its path."""
    from incidents.models import Service
    from runbooks.choices import SectionKind
    from runbooks.models import Runbook
    from runbooks.specs import RunbookSpec, SectionSpec, StepSpec

    Service.objects.create(
        name="Bench target",
        slug="bench-target",
        base_url=f"http://127.0.0.1:{health_port}",
        database_url=database_url,
        redis_url=redis_url,
    )
    checks = [
        ("HTTP health", "http_check", {"path": "/health"}),
        ("Connections by state", "postgres_query", {"check": "connections_by_state"}),
        ("Open incidents", "postgres_query", {"sql": "SELECT count(*) AS open FROM incidents_incident"}),
        ("Redis ping", "redis_check", {"check": "ping"}),
    ]
    spec = RunbookSpec(
        title="Bench first look",
        slug="bench-first-look",
        alert_names=[ALERTNAME],
        services=["bench-target"],
        sections=[SectionSpec("First look", kind=SectionKind.FIRST_LOOK)],
        steps=[StepSpec(title, kind="automated", action=action, params=params) for title, action, params in checks],
    )
    Runbook.create(spec, by=None)
    return _common.intake_path("bench-storm")


def post(port: int, path: str, item: Post, body: bytes) -> None:
    item.sent = time.time()
    try:
        item.status, _ = _common.request(port, "POST", path, body, {"Content-Type": "application/json"}, timeout=300)
    except OSError:
        item.status = -1
    item.answered = time.time()


def send_steady(port: int, path: str, scenario: str, count: int, interval: float, alerts: int) -> list[Post]:
    posts = []
    start = time.monotonic()
    for n in range(count):
        time.sleep(max(0.0, start + n * interval - time.monotonic()))
        item = Post(group=f"{scenario}-{n}", sent=0.0)
        post(port, path, item, _common.alertmanager_payload(item.group, ALERTNAME, alerts))
        posts.append(item)
    return posts


def send_storm(port: int, path: str, scenario: str, count: int, alerts: int) -> list[Post]:
    """Every group on its own connection and thread, released together."""
    posts = [Post(group=f"{scenario}-{n}", sent=0.0) for n in range(count)]
    bodies = [_common.alertmanager_payload(p.group, ALERTNAME, alerts) for p in posts]
    barrier = threading.Barrier(count)

    def client(item: Post, body: bytes) -> None:
        barrier.wait()
        post(port, path, item, body)

    threads = [threading.Thread(target=client, args=pair) for pair in zip(posts, bodies, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return posts


def wait_first_looks(groups: list[str], timeout: float) -> None:
    """Until every group's incident has a finished first look (or the timeout)."""
    from runbooks.models import RunbookRun

    keys = [group_key(g) for g in groups]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = RunbookRun.objects.filter(incident__alert_groups__group_key__in=keys, first_look=True)
        if runs.filter(finished_at__isnull=False).values("incident").distinct().count() >= len(groups):
            return
        time.sleep(0.5)
    print(f"  (gave up waiting after {timeout:.0f} s: some first looks did not finish)")


def group_key(group: str) -> str:
    return json.loads(_common.alertmanager_payload(group, ALERTNAME, 0))["groupKey"]


def task_clock(redis_client) -> list[dict]:
    return [json.loads(raw) for raw in redis_client.lrange(_common.TASK_CLOCK_KEY, 0, -1)]


def seconds(value) -> float | None:
    return value.timestamp() if value is not None else None


def collect(result: Result, clock: list[dict]) -> None:
    """Join the posts to their deliveries, incidents, first-look runs and steps."""
    from incidents.models import AlertDelivery, AlertGroup
    from runbooks.models import RunbookRun, StepRun

    by_key = {group_key(p.group): p for p in result.posts}
    deliveries = {d.group_key: d for d in AlertDelivery.objects.filter(group_key__in=by_key).order_by("id")}
    groups = {g.group_key: g for g in AlertGroup.objects.filter(group_key__in=by_key).select_related("incident")}
    incident_ids = [g.incident_id for g in groups.values() if g.incident_id]
    runs = {}
    for run in RunbookRun.objects.filter(incident_id__in=incident_ids, first_look=True).order_by("id"):
        runs.setdefault(run.incident_id, run)
    steps = defaultdict(list)
    for step in StepRun.objects.filter(run__in=list(runs.values())):
        steps[step.run_id].append(step)
    delivery_tasks = {r["arg"]: r for r in clock if r["name"].endswith("process_alert_delivery")}
    step_ids = {s.pk for run_steps in steps.values() for s in run_steps}
    step_tasks = defaultdict(list)
    for record in clock:
        result.tasks[record["name"]].append(record["finished"] - record["started"])
        if record["name"].startswith("runbooks.") and record["arg"] in step_ids:
            step_tasks[record["arg"]].append(record)
    for key, item in by_key.items():
        delivery, group = deliveries.get(key), groups.get(key)
        incident = group.incident if group is not None else None
        if delivery is None or incident is None:
            result.missing_incident += 1
            continue
        visible = seconds(delivery.processed_at) or seconds(incident.created_at)
        result.visible.append(visible - item.sent)
        _delivery_breakdown(result, item, delivery, incident, delivery_tasks.get(delivery.pk))
        run = runs.get(incident.pk)
        if run is None:
            result.missing_first_look += 1
            continue
        result.run_states[run.state] += 1
        _run_breakdown(result, item, visible, run, steps[run.pk], step_tasks)


def _delivery_breakdown(result: Result, item: Post, delivery, incident, task: dict | None) -> None:
    received = seconds(delivery.received_at)
    add = result.breakdown
    add["POST -> delivery stored (web)"].append(received - item.sent)
    add["POST answered (web)"].append(item.answered - item.sent)
    if task is not None:
        add["delivery queue wait"].append(task["started"] - received)
        add["delivery task time"].append(task["finished"] - task["started"])
    else:  # no task record: the incident's creation is the earliest row the apply writes
        add["delivery queue wait (to incident row)"].append(seconds(incident.created_at) - received)


def _run_breakdown(result: Result, item: Post, visible: float, run, steps: list, step_tasks: dict) -> None:
    add = result.breakdown
    created = seconds(run.created_at)
    add["incident visible -> first look created"].append(created - visible)
    finished = seconds(run.finished_at) or max((seconds(s.finished_at) or 0 for s in steps), default=0) or None
    if finished is None:
        result.missing_first_look += 1
        return
    result.done.append(finished - item.sent)
    add["first look created -> done"].append(finished - created)
    started = [seconds(s.started_at) for s in steps if s.started_at is not None]
    if started:
        add["first look created -> first step started"].append(min(started) - created)
    for step in steps:
        queued = seconds(step.enqueued_at) or created
        if step.started_at is not None:
            add["step queue wait"].append(seconds(step.started_at) - queued)
            if step.finished_at is not None:
                add["step started -> finished (rows)"].append(seconds(step.finished_at) - seconds(step.started_at))
        duration_ms = (step.result or {}).get("duration_ms") if isinstance(step.result, dict) else None
        records = step_tasks.get(step.pk, [])
        task_time = sum(r["finished"] - r["started"] for r in records) if records else None
        if task_time is not None:
            add["step task time"].append(task_time)
        if duration_ms is not None:
            add["step action time"].append(duration_ms / 1000)
            if task_time is not None:
                add["step task - action (bookkeeping)"].append(task_time - duration_ms / 1000)


def floor(result: Result, redis_client) -> None:
    """The baseline in the same run: one no-op task at a time (latency), then as many no-op tasks
    as the scenario ran, all at once (drain time), through the same worker and broker."""
    from opsportal.celery import app

    def wait(count: int) -> list[dict]:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            records = [r for r in task_clock(redis_client) if r["name"] == "bench.noop"]
            if len(records) >= count:
                return records
            time.sleep(0.01)
        raise SystemExit("the worker did not run the no-op tasks within 300 s")

    for _ in range(10):
        redis_client.delete(_common.TASK_CLOCK_KEY)
        sent = time.time()
        app.send_task("bench.noop")
        result.floor_latency.append(wait(1)[0]["finished"] - sent)
    if not result.name.startswith("storm"):
        return
    result.floor_tasks = sum(len(v) for v in result.tasks.values())
    redis_client.delete(_common.TASK_CLOCK_KEY)
    sent = time.time()
    for _ in range(result.floor_tasks):
        app.send_task("bench.noop")
    result.floor_drain = max(r["finished"] for r in wait(result.floor_tasks)) - sent


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run_scenario(name: str, count: int, args, port: int, path: str, redis_client) -> Result:
    kind, _, interval = SCENARIOS[name]
    redis_client.delete(_common.TASK_CLOCK_KEY)
    load_before = loadavg()
    started = time.monotonic()
    if kind == "steady":
        posts = send_steady(port, path, name, count, interval, args.alerts)
    else:
        posts = send_storm(port, path, name, count, args.alerts)
    wait_first_looks([p.group for p in posts], timeout=120 + count * 2)
    result = Result(name=name, posts=posts, duration=time.monotonic() - started)
    time.sleep(1)  # the last task's postrun record follows its commit
    collect(result, task_clock(redis_client))
    result.load = (load_before, loadavg())
    floor(result, redis_client)
    return result


def fmt(values: list[float]) -> str:
    if not values:
        return f"{'-':>8} {'-':>8} {'-':>8}"
    return " ".join(f"{_ms(v):>8}" for v in (statistics.median(values), _common.percentile(values, 95), max(values)))


def _ms(value: float) -> str:
    return f"{value * 1000:.0f}ms" if abs(value) < 1 else f"{value:.2f}s"


def report_scenario(r: Result, args) -> None:
    """One scenario's breakdown, printed as soon as it ends (a long storm may be interrupted)."""
    print(f"\n{r.name}: breakdown from row timestamps and the worker's task clock   p50      p95      max")
    for label, values in r.breakdown.items():
        print(f"  {label:60} {fmt(values)}  (n={len(values)})")
    for name, values in sorted(r.tasks.items()):
        print(f"  {'task ' + name:60} {fmt(values)}  (n={len(values)})")
    states = ", ".join(f"{s} {n}" for s, n in sorted(r.run_states.items()))
    print(f"  first-look runs: {states or 'none'}; without incident {r.missing_incident}, "
          f"without finished first look {r.missing_first_look}; scenario took {r.duration:.1f} s")  # fmt: skip
    print(f"  load average (1, 5, 15 min) before {r.load[0]}, after {r.load[1]} (2 cores, shared)")
    _print_floor(r)
    if r.name in TARGETS and not args.quick:
        _, q, limit = TARGETS[r.name]
        value = _common.percentile(r.done, q)
        verdict = "met" if value is not None and value <= limit and not r.missing_first_look else "NOT met"
        print(f"  target: first look done p{q} <= {_ms(limit)} -> {_ms(value) if value else '-'}: {verdict}")
    sys.stdout.flush()


def report(results: list[Result], args) -> None:
    print(f"\nfirst look storm: gunicorn {args.web_workers} workers, Celery 1 worker x {args.concurrency} prefork, ")
    print(f"PostgreSQL + Redis, {args.alerts} alerts per POST, first look = 4 read-only checks (HTTP, 2 SQL, Redis)")
    print(f"\n{'scenario':10} {'POSTs':>5} {'2xx':>4} | {'POST -> incident visible':^26} | ", end="")
    print(f"{'POST -> first look done':^26}")
    print(f"{'':10} {'':>5} {'':>4} | {'p50':>8} {'p95':>8} {'max':>8} | {'p50':>8} {'p95':>8} {'max':>8}")
    for r in results:
        ok = sum(1 for p in r.posts if 200 <= p.status < 300)
        print(f"{r.name:10} {len(r.posts):>5} {ok:>4} | {fmt(r.visible)} | {fmt(r.done)}")


def _print_floor(r: Result) -> None:
    latency = statistics.median(r.floor_latency) if r.floor_latency else None
    done = statistics.median(r.done) if r.done else None
    if latency and done:
        print(f"  floor: a no-op task alone, send -> done p50 {_ms(latency)}; first look done p50 / that = "
              f"{done / latency:.0f}")  # fmt: skip
    if r.floor_drain and r.done:
        print(f"  floor: {r.floor_tasks} no-op tasks (as many as the scenario ran) sent at once drain in "
              f"{_ms(r.floor_drain)}; first look done max / that = {max(r.done) / r.floor_drain:.1f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default="steady,storm100,storm500")
    parser.add_argument("--quick", action="store_true", help="small scenarios, to check the script works")
    parser.add_argument("--alerts", type=int, default=10, help="alerts per POST (default 10)")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2, help="Celery prefork processes")
    parser.add_argument("--port", type=int, default=int(os.environ.get("BENCH_PORT", "18660")))
    args = parser.parse_args()
    names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if unknown := [n for n in names if n not in SCENARIOS]:
        raise SystemExit(f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)}")
    database_url, redis_url = _common.production_urls()
    with _common.bench_database(database_url, "bench_storm") as bench_url:
        env = _common.portal_env(bench_url, "storm")
        _common.prepare(env)
        import redis

        redis_client = redis.Redis.from_url(redis_url)
        health, health_port = start_health_server()
        web = worker = None
        try:
            path = make_fixtures(health_port, bench_url, redis_url)
            web = _common.start_web(env, args.port, args.web_workers)
            worker, _ = _common.start_worker(env, args.concurrency)
            results = []
            for name in names:
                count = QUICK[name] if args.quick else SCENARIOS[name][1]
                print(f"running {name}: {count} new alert groups ...", flush=True)
                results.append(run_scenario(name, count, args, args.port, path, redis_client))
                report_scenario(results[-1], args)
            report(results, args)
        finally:
            _common.stop(web, worker)
            health.terminate()
            redis_client.delete(_common.TASK_CLOCK_KEY)
            print(f"(logs of web and worker: {env['BENCH_WORKDIR']})")


if __name__ == "__main__":
    main()
