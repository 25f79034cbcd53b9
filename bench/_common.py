"""What the process benchmarks share: a throwaway PostgreSQL database, the portal's processes
started as production starts them (gunicorn with gunicorn.conf.py, one prefork Celery worker),
an HTTP client, process RSS and percentiles.

Used by bench/first_look_storm.py and bench/memory.py. Each benchmark creates its database as
`<DATABASE_URL's name>_<suffix>`, drops it at the end, and points the processes at it.
"""

import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BENCH_SECRET_KEY = "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
# Written by bench/task_clock.py inside the worker: when each task started and ended.
TASK_CLOCK_KEY = "opsportal-bench:task-clock"


def production_urls() -> tuple[str, str]:
    database_url, redis_url = os.environ.get("DATABASE_URL", ""), os.environ.get("REDIS_URL", "")
    if not database_url.startswith("postgres") or not redis_url:
        raise SystemExit("Set DATABASE_URL (PostgreSQL) and REDIS_URL: the benchmark measures the production setup.")
    return database_url, redis_url


def admin_sql(database_url: str, statement: str) -> None:
    import psycopg

    admin = urlunsplit(urlsplit(database_url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(statement)


@contextmanager
def bench_database(database_url: str, suffix: str):
    """A fresh database next to DATABASE_URL's, migrated; yields its URL and drops it afterwards."""
    name = urlsplit(database_url).path.lstrip("/") + f"_{suffix}"
    url = urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    admin_sql(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin_sql(database_url, f'CREATE DATABASE "{name}"')
    try:
        yield url
    finally:
        if "django" in sys.modules:
            from django.db import connections

            connections.close_all()
        admin_sql(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def portal_env(database_url: str, prefix: str) -> dict:
    """The environment of every portal process of the benchmark (and of this process's Django)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{prefix}-"))
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "opsportal.settings",
        "PYTHONPATH": str(ROOT),
        "SECRET_KEY": os.environ.get("SECRET_KEY", BENCH_SECRET_KEY),
        "OPSPORTAL_VAR_DIR": str(workdir / "var"),
        "BENCH_WORKDIR": str(workdir),
        "LOG_LEVEL": "WARNING",
        "SECURE_SSL_REDIRECT": "false",  # plain HTTP on loopback, as behind a TLS-terminating proxy
    }


def prepare(env: dict) -> None:
    """Migrate the bench database, empty the broker's queues, then set up Django in this process."""
    subprocess.run([str(BIN / "python"), "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [str(BIN / "celery"), "-A", "opsportal", "purge", "-f"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    for key in ("DATABASE_URL", "SECRET_KEY", "OPSPORTAL_VAR_DIR", "DJANGO_SETTINGS_MODULE", "SECURE_SSL_REDIRECT"):
        os.environ[key] = env[key]
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _log(env: dict, name: str):
    return open(Path(env["BENCH_WORKDIR"]) / f"{name}.log", "wb")


def start_web(env: dict, port: int, workers: int = 2) -> subprocess.Popen:
    """gunicorn as the Procfile starts it (gunicorn.conf.py), on loopback; waits for /health."""
    command = [str(BIN / "gunicorn"), "opsportal.wsgi", "--config", "gunicorn.conf.py"]
    command += ["--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
    log = _log(env, "web")
    web = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if web.poll() is not None:
                raise SystemExit(f"gunicorn exited; see {log.name}")
            try:
                if request(port, "GET", "/health", timeout=2)[0] == 200:
                    return web
            except OSError:
                time.sleep(0.3)
        raise SystemExit("gunicorn did not answer /health within 60 s")
    except BaseException:  # interrupted too: gunicorn must not outlive the benchmark
        stop(web)
        raise


def start_worker(env: dict, concurrency: int = 2) -> tuple[subprocess.Popen, str]:
    """One prefork Celery worker on every queue (no -Q, as the Procfile), with the task clock
    loaded; returns when it answers a ping."""
    from opsportal.celery import app

    name = f"bench-{os.getpid()}@{socket.gethostname()}"
    command = [str(BIN / "celery"), "-A", "opsportal", "worker", "-n", name, "--concurrency", str(concurrency)]
    command += ["--pool", "prefork", "--loglevel", "WARNING", "--without-gossip", "--without-mingle"]
    command += ["-I", "bench.task_clock"]
    log = _log(env, "worker")
    worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 60
    try:
        while not app.control.ping(destination=[name], timeout=0.5):
            if time.monotonic() > deadline or worker.poll() is not None:
                raise SystemExit(f"the Celery worker did not start within 60 s; see {log.name}")
    except BaseException:  # interrupted too: the worker must not outlive the benchmark
        stop(worker)
        raise
    return worker, name


def stop(*processes: subprocess.Popen | None) -> None:
    """SIGTERM each process group (gunicorn and Celery stop their children), SIGKILL after 30 s."""
    running = [p for p in processes if p is not None and p.poll() is None]
    for process in running:
        os.killpg(process.pid, signal.SIGTERM)
    for process in running:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def request(port: int, method: str, path: str, body: bytes | None = None, headers=None, timeout: float = 120):
    """One request on its own connection: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def alertmanager_payload(group_key: str, alertname: str, alerts: int, *, tag: str = "", note: str = "") -> bytes:
    """An Alertmanager webhook notification of `alerts` firing alerts in one group."""
    rows = [
        {
            "status": "firing",
            "labels": {"alertname": alertname, "group": group_key, "instance": f"host-{n}:9100", "severity": "high"},
            "annotations": {"summary": f"{alertname} on {group_key}", "description": f"synthetic load {note}".strip()},
            "startsAt": "2026-01-01T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up",
            "fingerprint": hashlib.sha256(f"{group_key}/{n}/{tag}".encode()).hexdigest()[:16],
        }
        for n in range(alerts)
    ]
    return json.dumps(
        {
            "version": "4",
            "groupKey": f'{{}}:{{group="{group_key}"}}',
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "ops-portal",
            "groupLabels": {"group": group_key},
            "commonLabels": {"alertname": alertname, "group": group_key},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager.example:9093",
            "alerts": rows,
        }
    ).encode()


def intake_path(name: str = "bench") -> str:
    """A new Alertmanager integration (first look on); the path of its webhook URL."""
    from incidents.models import Integration

    integration, token = Integration.create(name=name, kind="alertmanager")
    return urlsplit(integration.url(token)).path


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:  # field 4, after "(comm)": the parent pid
            found.append(int(entry.name))
    return sorted(found)


def rss_kib(pid: int) -> int | None:
    """Resident set size in KiB (psutil if installed, else /proc/<pid>/status VmRSS)."""
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss // 1024
    except ImportError:
        pass
    except Exception:  # noqa: BLE001 - the process is gone
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]
