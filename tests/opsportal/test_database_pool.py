"""DATABASE_POOL_MAX_SIZE: a gunicorn process with more threads than pool slots holds no more
PostgreSQL connections than the pool's size, where without the pool each busy thread holds one."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from tests.opsportal.test_settings import load_settings
from tests.runbooks.conftest import free_port, subprocess_database_url

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
THREADS = 6


def get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status


def peak_connections(pool_size: int) -> int:
    """Most connections one gunicorn process (THREADS threads) held while 60 /ready probes (each a
    query) came in from THREADS clients at once; counted in pg_stat_activity by application name."""
    name = f"pool-test-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"{subprocess_database_url()}?application_name={name}",
        "DATABASE_POOL_MAX_SIZE": str(pool_size),
        "OPSPORTAL_VAR_DIR": str(Path(settings.VAR_DIR).resolve()),
        "SECRET_KEY": settings.SECRET_KEY,
        "SECURE_SSL_REDIRECT": "false",
        "LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "gunicorn", "opsportal.wsgi", "--config", "gunicorn.conf.py", "--workers", "1"]
    command += ["--bind", f"127.0.0.1:{port}", "--worker-class", "gthread", "--threads", str(THREADS)]
    process = subprocess.Popen(
        command, cwd=settings.BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    peak = 0
    try:
        for _ in range(300):
            try:
                get(f"{base}/health")
                break
            except OSError:
                time.sleep(0.2)
        with psycopg.connect(subprocess_database_url(), autocommit=True) as watch, ThreadPoolExecutor(THREADS) as pool:
            pending = [pool.submit(get, f"{base}/ready") for _ in range(60)]
            while not all(f.done() for f in pending):
                count = watch.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [name])
                peak = max(peak, count.fetchone()[0])
                time.sleep(0.005)
            assert [f.result() for f in pending] == [200] * 60
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
    return peak


def test_the_pool_caps_a_process_connections_at_its_size():
    pooled = peak_connections(2)
    assert 1 <= pooled <= 2


def test_without_the_pool_a_process_holds_a_connection_per_busy_thread():
    """The baseline the pool is for: persistent connections (CONN_MAX_AGE), one per thread."""
    assert peak_connections(0) > 2


def test_a_bad_pool_size_fails_naming_the_variable():
    bad = load_settings(DATABASE_POOL_MAX_SIZE="many")
    assert bad.returncode != 0 and "DATABASE_POOL_MAX_SIZE" in bad.stderr
