"""Runbook runs through a real Celery worker on Redis, against raw Celery throughput.

    REDIS_URL=redis://127.0.0.1:6379/3 DATABASE_URL=postgres://postgres@127.0.0.1:5432/opsportal \
    .venv/bin/python bench/runbook_runs.py [--runs 200] [--concurrency 2]

Creates a scratch database (the test database name of DATABASE_URL, suffixed _bench), starts
`celery worker` (prefork) as a subprocess, starts N runs of a 5-step runbook of fast automated
steps (one incident each, so timeline events are written as in real use) and waits for all of
them. Then it sends as many no-op tasks through the same worker and broker. It prints steps/s,
the median time from starting a run to its first step starting, no-op tasks/s and the ratio.
"""

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsportal.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")

import django  # noqa: E402

django.setup()

import redis  # noqa: E402
from django.conf import settings  # noqa: E402

from opsportal.celery import app  # noqa: E402

COUNTER = "opsportal-bench:noop"


@app.task(name="bench.noop", ignore_result=True)
def noop() -> None:
    """The cheapest task that still proves it ran: one INCR."""
    redis.Redis.from_url(settings.REDIS_URL).incr(COUNTER)


class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def start_worker(database_url: str, concurrency: int) -> subprocess.Popen:
    # Task logging stays off so it is not part of what is measured; readiness is asked by ping.
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}
    name = f"bench-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "opsportal",
        "worker",
        "-Q",
        "celery,runbooks,first_look",
        "-n",
        name,
    ]
    command += ["-c", str(concurrency), "--pool", "prefork", "--without-mingle", "--without-gossip"]
    command += ["-I", "bench.runbook_runs", "--loglevel", "WARNING"]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while not app.control.ping(destination=[name], timeout=0.5):
        if time.monotonic() > deadline or process.poll() is not None:
            os.killpg(process.pid, signal.SIGKILL)
            sys.exit("the worker did not start within 60 s")
    return process


def stop_worker(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def database_url_for(name: str) -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(name).resolve()}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST']}:{db['PORT'] or 5432}/{name}"


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    if not settings.REDIS_URL:
        sys.exit("The benchmark needs Redis: set REDIS_URL.")

    from django.test.utils import setup_databases, teardown_databases

    db = settings.DATABASES["default"]
    db.setdefault("TEST", {})["NAME"] = (db["TEST"].get("NAME") or f"test_{db['NAME']}") + "_bench"
    old_config = setup_databases(verbosity=0, interactive=False)

    from incidents.models import Incident, Service
    from runbooks.models import Runbook, RunbookRun, StepRun
    from runbooks.specs import RunbookSpec, SectionSpec, StepSpec

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    service = Service.objects.create(
        name="Bench",
        slug="bench",
        base_url=f"http://127.0.0.1:{server.server_address[1]}",
        redis_url=settings.REDIS_URL,
    )
    steps = [
        StepSpec("HTTP health", kind="automated", action="http_check", params={"path": "/health"}),
        StepSpec("Redis ping", kind="automated", action="redis_check", params={"check": "ping"}),
        StepSpec("Redis keys", kind="automated", action="redis_check", params={"check": "dbsize"}),
        StepSpec("Memory", kind="automated", action="host_check", params={"check": "memory"}),
        StepSpec("Disk", kind="automated", action="host_check", params={"check": "disk", "paths": ["/"]}),
    ]
    runbook = Runbook.create(
        RunbookSpec(title="Bench checks", sections=[SectionSpec("Checks")], steps=steps, services=["bench"]), by=None
    )
    incidents = [Incident.declare(by=None, title=f"Bench incident {n}") for n in range(args.runs)]
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(COUNTER)
    worker = start_worker(database_url_for(db["NAME"]), args.concurrency)
    try:
        started = time.perf_counter()
        run_ids = [RunbookRun.start(runbook, by=None, incident=i, target=service).pk for i in incidents]
        wait_until(
            lambda: not RunbookRun.objects.filter(pk__in=run_ids, finished_at__isnull=True).exists(),
            timeout=600,
            what="the runs to finish",
        )
        elapsed = time.perf_counter() - started
        runs = RunbookRun.objects.filter(pk__in=run_ids)
        states = sorted(set(runs.values_list("state", flat=True)))
        step_count = StepRun.objects.filter(run__in=runs, state="succeeded").count()
        firsts = StepRun.objects.filter(run__in=runs, order=1).select_related("run")
        latencies = sorted((s.started_at - s.run.created_at).total_seconds() * 1000 for s in firsts)
        durations = [(r.finished_at - r.created_at).total_seconds() for r in runs]

        # The burst above measures queueing; one run at a time shows the engine's own latency.
        idle = []
        for incident in [Incident.declare(by=None, title=f"Idle {n}") for n in range(20)]:
            run = RunbookRun.start(runbook, by=None, incident=incident, target=service)
            first = StepRun.objects.filter(run=run, order=1)
            wait_until(lambda first=first: first.filter(started_at__isnull=False).exists(), 60, "a first step")
            idle.append((first.get().started_at - run.created_at).total_seconds() * 1000)
            wait_until(lambda run=run: RunbookRun.objects.get(pk=run.pk).finished_at is not None, 60, "an idle run")

        total = args.runs * len(steps)
        noop_started = time.perf_counter()
        for _ in range(total):
            noop.delay()
        wait_until(lambda: int(client.get(COUNTER) or 0) >= total, timeout=600, what="the no-op tasks")
        noop_elapsed = time.perf_counter() - noop_started
    finally:
        stop_worker(worker)
        server.shutdown()
        client.delete(COUNTER)
        teardown_databases(old_config, verbosity=0)

    steps_per_second = step_count / elapsed
    noops_per_second = total / noop_elapsed
    print(f"runs: {args.runs} x {len(steps)} automated steps, worker prefork x{args.concurrency}, broker Redis")
    print(f"run states: {', '.join(states)}; steps succeeded: {step_count} of {total}")
    print(f"runbook steps/s: {steps_per_second:.1f} ({elapsed:.1f} s for all runs)")
    print(
        f"start -> first step started, all runs at once: median {statistics.median(latencies):.0f} ms, "
        f"p95 {latencies[int(len(latencies) * 0.95) - 1]:.0f} ms; "
        f"run duration median {statistics.median(durations):.2f} s"
    )
    print(f"start -> first step started, one run at a time: median {statistics.median(idle):.0f} ms")
    print(f"raw Celery no-op tasks/s: {noops_per_second:.1f} ({noop_elapsed:.1f} s for {total} tasks)")
    print(f"ratio runbook steps/s : no-op tasks/s = {steps_per_second / noops_per_second:.2f}")


if __name__ == "__main__":
    main()
