"""Memory under load: the resident set (RSS) of every web and worker process before and after
each of two rounds of 10 000 requests (alert intake POSTs and portal page GETs) and the tasks they
cause.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/opsportal REDIS_URL=redis://127.0.0.1:6379/0 \
        .venv/bin/python bench/memory.py [--requests 10000] [--quick]

The setup of bench/first_look_storm.py (throwaway database `<name>_bench_memory`, gunicorn with
2 workers from gunicorn.conf.py, one Celery worker with 2 prefork processes, the first-look
runbook of four read-only checks). Half the requests (`--post-share`) are Alertmanager POSTs: one
in 20 opens a new alert group (an incident and its first look), the others re-send a known group
with a changed annotation (a new delivery the worker applies, as Alertmanager's repeat interval
does). The rest are GETs of the dashboard, the incident list, an incident page, the runbooks list
and the status page, as a signed-in admin.

A warm-up of `--warmup` requests of the same mix runs first, so that imports, template and URL
caches are loaded before the "before" figure. After the load it waits until the worker has
applied every delivery and finished every first look, then reads RSS again (psutil when
installed, else /proc/<pid>/status VmRSS). Growth per process is after / before - 1; the target
of issue #16 is within 5 %.
"""

import argparse
import itertools
import logging
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common
import first_look_storm

GROWTH_TARGET = 5.0  # percent


def session_cookie() -> str:
    """A signed-in admin's session, as a Cookie header."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.create_superuser("bench-admin", "bench@example.com", None)
    client = Client()
    logging.disable(logging.INFO)  # the sign-in line of this process is not the benchmark's output
    client.force_login(user)
    logging.disable(logging.NOTSET)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


class Load:
    """The request mix, numbered so every POST carries a payload never sent before."""

    def __init__(self, port: int, intake: str, cookie: str, post_share: float):
        self.port, self.intake, self.cookie = port, intake, cookie
        self.post_every = max(1, round(1 / post_share)) if post_share > 0 else 0
        self.counter = itertools.count()
        self.gets = itertools.count()
        self.groups = 0
        self.lock = threading.Lock()
        self.statuses: dict[int, int] = {}
        self.latency: dict[str, list[float]] = {}
        self.pages = ["/", "/incidents/", "/runbooks/", "/status/"]

    def one(self) -> None:
        n = next(self.counter)
        if self.post_every and n % self.post_every == 0:
            self._post(n)
        else:
            self._get()

    def _post(self, n: int) -> None:
        posted = n // self.post_every
        with self.lock:
            if posted % 20 == 0 or self.groups == 0:  # one POST in 20 opens a new group
                self.groups += 1
                group = f"memory-{self.groups - 1}"
            else:
                group = f"memory-{posted % self.groups}"
        body = _common.alertmanager_payload(group, first_look_storm.ALERTNAME, 2, tag=str(n % 3), note=str(n))
        self._send("POST", self.intake, body, {"Content-Type": "application/json"}, "intake POST")

    def _get(self) -> None:
        from incidents.models import Incident

        n = next(self.gets)
        pages = self.pages
        if n % 5 == 4:
            latest = Incident.objects.order_by("-id").values_list("id", flat=True).first()
            pages = [f"/incidents/{latest}/"] if latest else pages
        path = pages[n % len(pages)]
        kind = "GET /incidents/<id>/" if len(pages) == 1 else f"GET {path}"
        self._send("GET", path, None, {"Cookie": self.cookie}, kind)

    def _send(self, method: str, path: str, body, headers, kind: str) -> None:
        started = time.perf_counter()
        try:
            status, _ = _common.request(self.port, method, path, body, headers, timeout=120)
        except OSError:
            status = -1
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1
            self.latency.setdefault(kind, []).append(time.perf_counter() - started)

    def run(self, count: int, clients: int) -> float:
        remaining = itertools.count()

        def client():
            while next(remaining) < count:
                self.one()

        started = time.monotonic()
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.monotonic() - started


def wait_drained(timeout: float = 1800) -> float:
    """Until no delivery is pending and no run is unfinished; returns the seconds waited."""
    from incidents.models import AlertDelivery
    from runbooks.models import RunbookRun

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        pending = AlertDelivery.objects.filter(state="pending").exists()
        if not pending and not RunbookRun.objects.filter(finished_at__isnull=True).exists():
            time.sleep(2)  # the last tasks' bookkeeping after their commit
            return time.monotonic() - started
        time.sleep(1)
    print(f"(still work pending after {timeout:.0f} s; measuring anyway)")
    return time.monotonic() - started


def processes(web, worker) -> dict[str, int]:
    found = {f"web worker {i}": pid for i, pid in enumerate(_common.children(web.pid), 1)}
    found["web master"] = web.pid
    found |= {f"celery process {i}": pid for i, pid in enumerate(_common.children(worker.pid), 1)}
    found["celery main"] = worker.pid
    return found


def snapshot(web, worker) -> dict[str, tuple[int, int | None]]:
    return {role: (pid, _common.rss_kib(pid)) for role, pid in processes(web, worker).items()}


def report(args, cold, snapshots, timings) -> None:
    """One column per round: a leak grows every round by about the same; a working set that grows
    with the data (caches, a bigger table's pages) grows in the first round and flattens after."""
    before = snapshots[0]
    print(f"\nmemory: {args.rounds} x {args.requests} requests ({args.post_share:.0%} intake POSTs, the rest page "
          f"GETs), {args.clients} clients, after {args.warmup} warm-up requests")  # fmt: skip
    for n, (load_s, drain_s) in enumerate(timings, 1):
        rate = args.requests / load_s
        print(f"round {n}: load took {load_s:.0f} s ({rate:.0f} req/s); drained {drain_s:.0f} s later")
    rounds = "".join(f" {'round ' + str(n):>8} {'growth':>7}" for n in range(1, len(snapshots)))
    print(f"\n{'process':18} {'pid':>7} {'cold MiB':>9} {'before MiB':>11}{rounds}")
    worst = [0.0] * (len(snapshots) - 1)
    for role, (pid, rss) in before.items():
        line = f"{role:18} {pid:>7} {_mib(cold.get(role, (None, None))[1]):>9} {_mib(rss):>11}"
        previous = rss
        for n, snapshot_ in enumerate(snapshots[1:]):
            after_pid, after_rss = snapshot_.get(role, (None, None))
            if after_pid != pid or previous is None or after_rss is None:
                line += f" (process replaced: pid {after_pid})"
                break
            growth = (after_rss / previous - 1) * 100
            worst[n] = max(worst[n], growth)
            line += f" {_mib(after_rss):>8} {growth:>6.1f}%"
            previous = after_rss
        print(line)
    totals = [sum(r for _, r in snap.values() if r) for snap in snapshots]
    print(f"{'all':18} {'':>7} {'':>9} {_mib(totals[0]):>11}" + "".join(
        f" {_mib(t):>8} {(t / p - 1) * 100:>6.1f}%" for p, t in itertools.pairwise(totals)))  # fmt: skip
    for n, growth in enumerate(worst, 1):
        verdict = "met" if growth <= GROWTH_TARGET else "NOT met"
        print(f"round {n}: every process within {GROWTH_TARGET:g} % -> largest growth {growth:.1f} %: {verdict}")


def _mib(kib: int | None) -> str:
    return f"{kib / 1024:.1f}" if kib else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--post-share", type=float, default=0.5, help="share of intake POSTs (default 0.5)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2, help="load rounds, RSS read after each (default 2)")
    parser.add_argument("--quick", action="store_true", help="1 000 requests after 200 of warm-up")
    parser.add_argument("--port", type=int, default=int(os.environ.get("BENCH_PORT", "18670")))
    args = parser.parse_args()
    if args.quick:
        args.requests, args.warmup = 1_000, 200
    database_url, redis_url = _common.production_urls()
    with _common.bench_database(database_url, "bench_memory") as bench_url:
        env = _common.portal_env(bench_url, "memory")
        _common.prepare(env)
        health, health_port = first_look_storm.start_health_server()
        web = worker = None
        try:
            intake = first_look_storm.make_fixtures(health_port, bench_url, redis_url)
            cookie = session_cookie()
            web = _common.start_web(env, args.port)
            worker, _ = _common.start_worker(env)
            cold = snapshot(web, worker)
            load = Load(args.port, intake, cookie, args.post_share)
            load.run(args.warmup, args.clients)
            wait_drained()
            snapshots, timings = [snapshot(web, worker)], []
            for _ in range(args.rounds):
                load_s = load.run(args.requests, args.clients)
                timings.append((load_s, wait_drained()))
                snapshots.append(snapshot(web, worker))
            report(args, cold, snapshots, timings)
            print("answers:", ", ".join(f"{status}: {n}" for status, n in sorted(load.statuses.items())))
            for kind, values in sorted(load.latency.items()):
                median, p95 = statistics.median(values) * 1000, _common.percentile(values, 95) * 1000
                print(f"  {kind:24} n={len(values):>5}  p50 {median:6.0f} ms  p95 {p95:6.0f} ms")
        finally:
            _common.stop(web, worker)
            health.terminate()
            print(f"(logs of web and worker: {env['BENCH_WORKDIR']})")


if __name__ == "__main__":
    main()
