"""Outages under an alert load: web, worker and beat across a stopped PostgreSQL and a stopped Redis.

Run by hand (needs PostgreSQL's server binaries and redis-server; it never touches shared servers):

    .venv/bin/python bench/outages.py            # 20 s outages of each
    OUTAGES=20,360 .venv/bin/python bench/outages.py

It starts a PRIVATE PostgreSQL and Redis (tests/outages.py), migrates, and runs gunicorn (2
workers), a Celery worker (2 processes) and beat as the Procfile does, with beat's full re-read
every BEAT_RESYNC_SECONDS=10 s (so every outage overlaps one). A load thread posts one new
Alertmanager group every 0.5 s and, like Alertmanager, posts again whatever was not answered 202;
a probe thread asks /health and /ready every 0.5 s. For each dependency and outage length it
stops the server, waits, starts it again and waits until every posted group is applied. It
prints, per outage: the answers the intake gave (any 500 is a failure), the slowest intake and
/health answers, whether each process is still the one started, and whether every group gave
exactly one incident with one alert (nothing lost, nothing applied twice).
"""

import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.outages import PrivatePostgres, PrivateRedis, free_port  # noqa: E402

OUTAGES = [int(s) for s in os.environ.get("OUTAGES", "20").split(",")]
DEPENDENCIES = os.environ.get("DEPENDENCIES", "postgres,redis").split(",")
RECOVERY_TIMEOUT = 600


def payload(group: int) -> bytes:
    labels = {"alertname": f"Outage{group}", "severity": "critical", "instance": "host-1:9100", "job": "bench"}
    return json.dumps(
        {
            "version": "4",
            "groupKey": f'{{}}:{{alertname="Outage{group}"}}',
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "ops-portal",
            "groupLabels": {"alertname": f"Outage{group}"},
            "commonLabels": labels,
            "commonAnnotations": {},
            "externalURL": "http://alertmanager.example:9093",
            "alerts": [
                {
                    "status": "firing",
                    "labels": labels,
                    "annotations": {"summary": f"Outage bench group {group}"},
                    "startsAt": "2026-01-01T10:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up",
                    "fingerprint": f"{group:016d}",
                }
            ],
        }
    ).encode()


class Load:
    """Posts a new group every 0.5 s; re-posts unaccepted ones (as Alertmanager does) every 2 s."""

    def __init__(self, port: int, path: str):
        self.port, self.path = port, path
        self.sent = 0
        self.unaccepted: dict[int, float] = {}  # group -> when to post it again
        self.answers: list[tuple[float, int, float, str]] = []  # (time, status, seconds, Retry-After)
        self.probes: list[tuple[float, str, int, float]] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, float, str]:
        started = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            status, retry_after = response.status, response.getheader("Retry-After", "")
            conn.close()
        except (OSError, http.client.HTTPException):
            status, retry_after = 0, ""
        return status, time.perf_counter() - started, retry_after

    def post(self, group: int) -> None:
        status, seconds, retry_after = self.request("POST", self.path, payload(group))
        with self.lock:
            self.answers.append((time.monotonic(), status, seconds, retry_after))
            if status == 202:
                self.unaccepted.pop(group, None)
            else:
                self.unaccepted[group] = time.monotonic() + 2

    def run_posts(self) -> None:
        while not self.stop.is_set():
            self.sent += 1
            self.post(self.sent)
            for group, due in list(self.unaccepted.items()):
                if due <= time.monotonic():
                    self.post(group)
            time.sleep(0.5)

    def run_probes(self) -> None:
        while not self.stop.is_set():
            for path in ("/health", "/ready"):
                status, seconds, _ = self.request("GET", path)
                self.probes.append((time.monotonic(), path, status, seconds))
            time.sleep(0.5)

    def retry_until_accepted(self) -> None:
        for group in list(self.unaccepted):
            self.post(group)


def counts(pg_url: str) -> dict:
    import psycopg

    try:
        with psycopg.connect(pg_url, connect_timeout=2) as conn:
            pending = conn.execute("select count(*) from incidents_alertdelivery where state <> 'processed'").fetchone()
            incidents = conn.execute("select count(*) from incidents_incident").fetchone()
            alerts = conn.execute("select count(*) from incidents_alert").fetchone()
            per_group = conn.execute(
                "select count(*) from (select incident_id from incidents_alert"
                " group by incident_id having count(*) <> 1) x"
            ).fetchone()
        return {"pending": pending[0], "incidents": incidents[0], "alerts": alerts[0], "odd_incidents": per_group[0]}
    except psycopg.Error:
        return {}


def start(env: dict, workdir: Path, name: str, command: list[str]) -> subprocess.Popen:
    log = open(workdir / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-outages-"))
    pg, redis = PrivatePostgres().start(), PrivateRedis(persist=True).start()
    processes: dict[str, subprocess.Popen] = {}
    try:
        pg_url = pg.create_database("opsportal")
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": pg_url,
            "REDIS_URL": redis.url(0),
            "SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
            "OPSPORTAL_VAR_DIR": str(workdir / "var"),
            "SECURE_SSL_REDIRECT": "false",
            "LOG_LEVEL": "WARNING",
            "BEAT_RESYNC_SECONDS": "10",
        }
        env.pop("CELERY_BROKER_URL", None)
        bin_dir = Path(sys.executable).parent
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        made = subprocess.run(
            [sys.executable, "manage.py", "create_integration", "bench", "--kind", "alertmanager",
             "--no-first-look", "--base-url", f"http://127.0.0.1:{port}"],
            cwd=ROOT, env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        path = "/" + made.stdout.strip().split("/", 3)[3]
        processes["web"] = start(env, workdir, "web", [str(bin_dir / "gunicorn"), "opsportal.wsgi", "--config",
                                 "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "--workers", "2"])  # fmt: skip
        processes["worker"] = start(env, workdir, "worker", [str(bin_dir / "celery"), "-A", "opsportal", "worker",
                                    "--loglevel", "INFO", "--concurrency", "2"])  # fmt: skip
        processes["beat"] = start(env, workdir, "beat", [str(bin_dir / "celery"), "-A", "opsportal", "beat",
                                  "--loglevel", "INFO"])  # fmt: skip
        load = Load(port, path)
        deadline = time.monotonic() + 60
        while load.request("GET", "/health")[0] != 200:
            if time.monotonic() > deadline:
                raise SystemExit("the web server did not start")
            time.sleep(0.3)
        threads = [
            threading.Thread(target=load.run_posts, daemon=True),
            threading.Thread(target=load.run_probes, daemon=True),
        ]
        for thread in threads:
            thread.start()
        servers = {"postgres": pg, "redis": redis}
        print(f"logs in {workdir}")
        for seconds in OUTAGES:
            for dependency in DEPENDENCIES:
                outage(load, servers[dependency], dependency, seconds, processes, pg_url)
        load.stop.set()
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        for process in processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        pg.close()
        redis.close()


def outage(load: Load, server, dependency: str, seconds: int, processes: dict, pg_url: str) -> None:
    time.sleep(5)
    began = time.monotonic()
    server.stop()
    time.sleep(seconds)
    server.start()
    back = time.monotonic()
    while True:  # every posted group accepted and applied
        load.retry_until_accepted()
        state = counts(pg_url)
        if not load.unaccepted and state and state["pending"] == 0 and state["incidents"] >= load.sent - 1:
            break
        if time.monotonic() - back > RECOVERY_TIMEOUT:
            print(f"  not recovered after {RECOVERY_TIMEOUT} s: {state}, unaccepted {len(load.unaccepted)}")
            break
        time.sleep(1)
    recovered = time.monotonic() - back
    window = [a for a in load.answers if began <= a[0] <= back + 5]
    probes = [p for p in load.probes if began <= p[0] <= back]
    statuses = Counter(a[1] for a in window)
    outage_503 = [a for a in window if a[1] == 503]
    state = counts(pg_url)
    with load.lock:
        sent = load.sent
    print(f"{dependency} stopped {seconds} s:")
    no_retry_after = sum(1 for a in outage_503 if not a[3])
    slowest = max((a[2] for a in window), default=0)
    print(f"  intake answers: {dict(statuses)}; 503 without Retry-After: {no_retry_after}; slowest {slowest:.2f} s")
    for path in ("/health", "/ready"):
        answers = [p for p in probes if p[1] == path]
        print(
            f"  {path}: {dict(Counter(p[2] for p in answers))}, slowest {max((p[3] for p in answers), default=0):.2f} s"
        )
    alive = {name: process.poll() is None for name, process in processes.items()}
    print(f"  processes still running (never restarted): {alive}")
    print(
        f"  recovered (all accepted and applied) {recovered:.0f} s after the restart; groups posted {sent}, "
        f"incidents {state.get('incidents')}, alerts {state.get('alerts')}, "
        f"incidents without exactly one alert {state.get('odd_incidents')}, pending {state.get('pending')}"
    )


if __name__ == "__main__":
    main()
