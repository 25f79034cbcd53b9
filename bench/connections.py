"""PostgreSQL connections of the production processes under a small load (README "Deploying").

Starts, on a throwaway database (`<name>_bench_conn`), gunicorn (2 workers), a Celery worker
(2 prefork processes) and beat, as the Procfile does; sends alert notifications (each opens an
incident whose deliveries the worker applies) and /ready probes from 8 clients; samples
pg_stat_activity every 20 ms and prints the peak connections of each kind of process. Three
times: gunicorn's sync workers, gthread workers (4 threads) without the pool, and with
DATABASE_POOL_MAX_SIZE=2. Needs DATABASE_URL (PostgreSQL) and a broker (REDIS_URL or
CELERY_BROKER_URL). `python bench/connections.py`
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parents[1]
PORT = int(os.environ.get("BENCH_PORT", "8791"))
REQUESTS = 400


def sql(url: str, statement: str) -> None:
    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(statement)


def start(command: list[str], env: dict, role: str) -> subprocess.Popen:
    url = env["DATABASE_URL"] + f"?application_name=bench-{role}"
    return subprocess.Popen(
        command, cwd=ROOT, env={**env, "DATABASE_URL": url}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip


def call(path: str, body: dict | None = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{PORT}{path}", data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status


def notification(n: int) -> dict:
    labels = {"alertname": f"ConnBench{n}", "severity": "warning", "instance": f"host-{n}"}
    return {
        "version": "4", "groupKey": f'{{}}:{{alertname="ConnBench{n}"}}', "status": "firing", "receiver": "ops",
        "groupLabels": {"alertname": labels["alertname"]}, "commonLabels": labels, "commonAnnotations": {},
        "externalURL": "http://am", "truncatedAlerts": 0,
        "alerts": [{"status": "firing", "labels": labels, "annotations": {}, "startsAt": "2026-01-01T10:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": f"{n:016d}"}],
    }  # fmt: skip


def measure(env: dict, intake: str, *, threads: int, pool_size: int, offset: int) -> dict[str, int]:
    web_args = ["--workers", "2"] + (["--worker-class", "gthread", "--threads", str(threads)] if threads > 1 else [])
    web_env = {**env, "DATABASE_POOL_MAX_SIZE": str(pool_size)}
    bin_dir = Path(sys.executable).parent
    gunicorn = [str(bin_dir / "gunicorn"), "opsportal.wsgi", "--config", "gunicorn.conf.py"]
    processes = [
        start([*gunicorn, "--bind", f"127.0.0.1:{PORT}", *web_args], web_env, "web"),
        start([str(bin_dir / "celery"), "-A", "opsportal", "worker", "-c", "2", "--without-gossip", "--without-mingle"],
              env, "worker"),
        start([str(bin_dir / "celery"), "-A", "opsportal", "beat", "-s", str(Path(env["OPSPORTAL_VAR_DIR"]) / "beat")],
              env, "beat"),
    ]  # fmt: skip
    peaks: dict[str, int] = {}
    done = threading.Event()

    def sample():
        with psycopg.connect(env["DATABASE_URL"], autocommit=True) as watch:
            while not done.is_set():
                rows = watch.execute(
                    "SELECT application_name, count(*) FROM pg_stat_activity"
                    " WHERE application_name LIKE 'bench-%%' GROUP BY 1"
                ).fetchall()
                for role, count in rows:
                    peaks[role] = max(peaks.get(role, 0), count)
                peaks["total"] = max(peaks.get("total", 0), sum(c for _, c in rows))
                time.sleep(0.02)

    try:
        for _ in range(300):
            try:
                call("/health")
                break
            except OSError:
                time.sleep(0.2)
        sampler = threading.Thread(target=sample)
        sampler.start()
        with ThreadPoolExecutor(8) as pool:
            work = [pool.submit(call, intake, notification(offset + n)) for n in range(REQUESTS // 2)]
            work += [pool.submit(call, "/ready") for _ in range(REQUESTS // 2)]
            failed = sum(f.result() not in (200, 202) for f in work)
        time.sleep(5)  # the worker applies the deliveries and runs the first looks
        done.set()
        sampler.join()
        peaks["failed requests"] = failed
        return peaks
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)


def main() -> None:
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith("postgres"):
        raise SystemExit("Set DATABASE_URL (PostgreSQL) and REDIS_URL or CELERY_BROKER_URL.")
    name = urlsplit(database_url).path.lstrip("/") + "_bench_conn"
    bench_db = urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    sql(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    sql(database_url, f'CREATE DATABASE "{name}"')
    var = ROOT / "var" / "bench-connections"
    var.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ, "DATABASE_URL": bench_db, "OPSPORTAL_VAR_DIR": str(var), "LOG_LEVEL": "WARNING",
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"),
        "SECURE_SSL_REDIRECT": "false",
    }  # fmt: skip
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    made = subprocess.run(
        [python, "manage.py", "create_integration", "bench", "--kind", "alertmanager", "--base-url", f"http://127.0.0.1:{PORT}"],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    intake = urlsplit(made.stdout.strip()).path
    print(f"\nPostgreSQL connections, peak during {REQUESTS} requests from 8 clients (gunicorn 2 workers,")
    print("Celery worker -c 2, beat; by application_name):")
    configs = [(1, 0, "sync workers, no pool (CONN_MAX_AGE=60)"), (4, 0, "gthread x4, no pool"),
               (4, 2, "gthread x4, DATABASE_POOL_MAX_SIZE=2")]  # fmt: skip
    for n, (threads, pool, label) in enumerate(configs):
        peaks = measure(env, intake, threads=threads, pool_size=pool, offset=n * 100_000)
        print(f"  {label:40} " + ", ".join(f"{k.removeprefix('bench-')} {v}" for k, v in sorted(peaks.items())))


if __name__ == "__main__":
    main()
