"""/metrics under gunicorn with two workers adds up every worker (PROMETHEUS_MULTIPROC_DIR)."""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


@pytest.fixture
def gunicorn(tmp_path):
    port = free_port()
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}}
    env.update(
        SECRET_KEY="k" * 50,
        OPSPORTAL_VAR_DIR=str(tmp_path / "var"),
        PROMETHEUS_MULTIPROC_DIR=str(multiproc),
        METRICS_ENABLED="true",
        METRICS_GUARD="none",
        SECURE_SSL_REDIRECT="false",
    )
    command = [sys.executable, "-m", "gunicorn", "opsportal.wsgi", "--config", "gunicorn.conf.py"]
    command += ["--bind", f"127.0.0.1:{port}", "--workers", "2"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                get(f"{base}/health")
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("gunicorn did not start")
        yield base, multiproc
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode()
        assert "Traceback" not in output, output


def health_count(base: str) -> float:
    text = get(f"{base}/metrics")
    counted = re.search(r'^http_requests_total\{method="GET",route="health",status="200"\} (\S+)$', text, re.M)
    assert counted, text[:2000]
    return float(counted.group(1))


def test_every_workers_requests_are_counted(gunicorn):
    base, multiproc = gunicorn
    # Counted from a settled reading, not from zero: with two workers the start-up probe is
    # counted once more while the second worker boots (seen: 1 worker -> 1, 2 workers -> 3).
    before, settled = health_count(base), None
    while settled != before:
        time.sleep(2)
        settled, before = before, health_count(base)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda _: get(f"{base}/health"), range(60)))
    assert health_count(base) - before == 60
    assert len(list(multiproc.glob("counter_*.db"))) >= 2  # both workers served and wrote their own file
