"""Alert intake under load: 10 000 alerts in 1 000 groups against the portal under gunicorn.

Run by hand with PostgreSQL and Redis:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/opsportal REDIS_URL=redis://127.0.0.1:6379/0 \
        .venv/bin/python bench/alert_intake.py

It creates a throwaway database (`<name>_bench_alerts`), migrates it, starts gunicorn and a
Celery worker on loopback, and posts one Alertmanager notification (10 alerts) per group from
CLIENTS threads as fast as the server answers — to two baselines served by the same gunicorn (a
bare DRF POST endpoint that stores nothing, and one that commits the parsed body as one JSON row:
the durable floor), then to the real intake URL. It prints accepted alerts/s, p50/p99 latency
and the intake's ratio to each baseline, waits for the worker to apply every delivery and
checks that exactly 1 000 incidents and 10 000 alerts exist, none lost. The machine is shared;
only ratios are comparable between runs.
"""

import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
GROUPS, PER_GROUP = 1_000, 10
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "8"))
PORT = int(os.environ.get("BENCH_PORT", "18650"))
WEB_WORKERS = os.environ.get("BENCH_WEB_WORKERS", "2")
DRAIN_TIMEOUT = 900
# By default the worker starts when the load ends, so the figures are the web tier's alone (workers
# usually run on other hosts); BENCH_WORKER_DURING_LOAD=1 shares this machine's two cores with it.
WORKER_DURING_LOAD = os.environ.get("BENCH_WORKER_DURING_LOAD") == "1"

BENCH_URLS = '''
import json

from django.db import connection
from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView


class Bare(APIView):
    """The baseline: DRF parses the same JSON body and answers 202, nothing stored."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []  # as the intake: Alertmanager must not be throttled

    def post(self, request):
        return Response({"alerts": len(request.data.get("alerts", []))}, status=202)


class Committed(Bare):
    """The durable floor: DRF parses the body and inserts it as one JSON row (autocommit: the
    INSERT is its own transaction, one round trip), then answers 202."""

    def post(self, request):
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO bench_row (body) VALUES (%s) RETURNING id", [json.dumps(request.data)])
            row_id = cursor.fetchone()[0]
        return Response({"row": row_id, "alerts": len(request.data.get("alerts", []))}, status=202)


urlpatterns = [
    path("bench/bare/", Bare.as_view()),
    path("bench/committed/", Committed.as_view()),
    path("", include("opsportal.urls")),
]
'''


def payload(group: int) -> bytes:
    alerts = []
    for n in range(PER_GROUP):
        labels = {
            "alertname": f"BenchAlert{group}",
            "severity": "critical" if group % 4 == 0 else "warning",
            "instance": f"host-{n}:9100",
            "job": "bench",
        }
        alerts.append(
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": f"Bench group {group} is failing", "description": "synthetic load"},
                "startsAt": "2026-01-01T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up",
                "fingerprint": f"{group:06d}{n:04d}",
            }
        )
    return json.dumps(
        {
            "version": "4",
            "groupKey": f'{{}}:{{alertname="BenchAlert{group}"}}',
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "ops-portal",
            "groupLabels": {"alertname": f"BenchAlert{group}"},
            "commonLabels": {"alertname": f"BenchAlert{group}", "job": "bench"},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager.example:9093",
            "alerts": alerts,
        }
    ).encode()


def load(path: str, bodies: list[bytes]) -> dict:
    """Post every body once from CLIENTS threads, each on its own keep-alive connection."""
    queue = list(reversed(bodies))
    lock = threading.Lock()
    latencies: list[float] = []
    failures: list[str] = []

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
        while True:
            with lock:
                if not queue:
                    break
                body = queue.pop()
            started = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                status = response.status
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                failures.append(f"{type(exc).__name__}: {exc}")
                continue
            elapsed = time.perf_counter() - started
            if status == 202:
                latencies.append(elapsed)
            else:
                failures.append(f"HTTP {status}")
        conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    duration = time.perf_counter() - started
    latencies.sort()
    return {
        "accepted": len(latencies),
        "failures": failures,
        "duration": duration,
        "rps": len(latencies) / duration,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


def wait_http(url_path: str, seconds: int = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=2)
            conn.request("GET", url_path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"the server did not answer {url_path} within {seconds}s")


def sql(url: str, statement: str, database: str = "postgres") -> None:
    import psycopg

    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path=f"/{database}"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(statement)


def main() -> None:
    database_url, redis_url = os.environ.get("DATABASE_URL", ""), os.environ.get("REDIS_URL", "")
    if not database_url.startswith("postgres") or not redis_url:
        raise SystemExit("Set DATABASE_URL (PostgreSQL) and REDIS_URL: the benchmark measures the production setup.")
    name = urlsplit(database_url).path.lstrip("/") + "_bench_alerts"
    bench_db = urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    sql(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    sql(database_url, f'CREATE DATABASE "{name}"')

    workdir = Path(tempfile.mkdtemp(prefix="bench-alerts-"))
    (workdir / "bench_urls.py").write_text(BENCH_URLS)
    (workdir / "bench_settings.py").write_text(
        'from opsportal.settings import *  # noqa: F403\nROOT_URLCONF = "bench_urls"\n'
    )
    env = {
        **os.environ,
        "DATABASE_URL": bench_db,
        "DJANGO_SETTINGS_MODULE": "bench_settings",
        "PYTHONPATH": f"{workdir}{os.pathsep}{ROOT}",
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"),
        "OPSPORTAL_VAR_DIR": str(workdir / "var"),
        "LOG_LEVEL": "WARNING",
        "SECURE_SSL_REDIRECT": "false",  # plain HTTP on loopback, as behind a TLS-terminating proxy
    }
    bin_dir = Path(sys.executable).parent
    python = str(bin_dir / "python")
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    # The committing baseline's table: bench-only, outside the product's migrations.
    sql(database_url, "CREATE TABLE bench_row (id bigserial PRIMARY KEY, body jsonb NOT NULL)", database=name)
    subprocess.run([str(bin_dir / "celery"), "-A", "opsportal", "purge", "-f"], cwd=ROOT, env=env, check=True,
                   capture_output=True)  # fmt: skip
    made = subprocess.run(
        [python, "manage.py", "create_integration", "bench", "--kind", "alertmanager", "--base-url", f"http://127.0.0.1:{PORT}"],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    intake_path = urlsplit(made.stdout.strip()).path

    web = subprocess.Popen(
        [str(bin_dir / "gunicorn"), "opsportal.wsgi", "--bind", f"127.0.0.1:{PORT}", "--workers", WEB_WORKERS,
         "--worker-class", "gthread", "--threads", "4", "--log-level", "warning"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    worker = None

    def start_worker():
        return subprocess.Popen(
            [str(bin_dir / "celery"), "-A", "opsportal", "worker", "--concurrency", "2", "--loglevel", "WARNING",
             "--without-heartbeat", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=env,
        )  # fmt: skip

    try:
        wait_http("/health")
        if WORKER_DURING_LOAD:
            worker = start_worker()
        bodies = [payload(g) for g in range(GROUPS)]
        warmup = [payload(GROUPS + g) for g in range(50)]
        load("/bench/bare/", warmup)
        load("/bench/committed/", warmup)
        bare = load("/bench/bare/", bodies)
        committed = load("/bench/committed/", bodies)
        intake = load(intake_path, bodies)
        if worker is None:
            worker = start_worker()

        os.environ.update({k: env[k] for k in ("DATABASE_URL", "SECRET_KEY", "OPSPORTAL_VAR_DIR")})
        os.environ["DJANGO_SETTINGS_MODULE"] = "opsportal.settings"
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from incidents.models import Alert, AlertDelivery, Incident

        started = time.perf_counter()
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while AlertDelivery.objects.filter(state="pending").exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        drained = time.perf_counter() - started

        alerts_sent = GROUPS * PER_GROUP
        print(
            f"\nalert intake: {GROUPS} groups x {PER_GROUP} alerts, {CLIENTS} clients, gunicorn {WEB_WORKERS}x4 gthread"
        )
        print(f"{'endpoint':26} {'accepted':>8} {'alerts/s':>9} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'failed':>6}")
        rows = (("bare DRF POST (no store)", bare), ("DRF POST + 1 JSON row", committed), ("alert intake", intake))
        for label, r in rows:
            print(
                f"{label:26} {r['accepted']:>8} {r['rps'] * PER_GROUP:>9.0f} {r['rps']:>7.0f} "
                f"{r['p50']:>7.1f} {r['p99']:>7.1f} {len(r['failures']):>6}"
            )
        for label, r in (("bare", bare), ("committing", committed)):
            print(
                f"intake / {label} throughput: {intake['rps'] / r['rps']:.2f}; p50 ratio {intake['p50'] / r['p50']:.2f}"
            )
        incidents, alerts = Incident.objects.count(), Alert.objects.count()
        pending = AlertDelivery.objects.filter(state="pending").count()
        processed = AlertDelivery.objects.filter(state="processed").count()
        print(
            f"worker (2 processes) applied the backlog {drained:.1f}s after the load ended "
            f"({alerts_sent / (intake['duration'] + drained):.0f} alerts/s from first POST to last incident)"
        )
        ok = incidents == GROUPS and alerts == alerts_sent and pending == 0 and not intake["failures"]
        print(
            f"check: {incidents} incidents (expected {GROUPS}), {alerts} alerts (expected {alerts_sent}), "
            f"{processed} deliveries processed, {pending} pending -> {'OK, none lost' if ok else 'FAILED'}"
        )
        if intake["failures"]:
            print("intake failures:", sorted(set(intake["failures"]))[:5])
        if not ok:
            raise SystemExit(1)
    finally:
        processes = [p for p in (web, worker) if p is not None]
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        from django.db import connections

        connections.close_all()
        sql(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
