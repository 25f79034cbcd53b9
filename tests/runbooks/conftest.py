"""Fixtures for runbook tests: real HTTP, Postgres and Redis targets, runbook builders, a real worker."""

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.db import connections
from django.utils.text import slugify

from runbooks.models import Runbook
from runbooks.specs import RunbookSpec, SectionSpec, StepSpec
from tests.factories import ServiceFactory

SEEDS = Path(__file__).resolve().parents[2] / "runbooks" / "seeds"
RELEASE = threading.Event()  # set at the end of the session: lets /hang requests return
HUNG_ONCE: set[str] = set()  # keys of /hang-once that already hung


class Handler(BaseHTTPRequestHandler):
    """A small real HTTP service: health endpoints, a slow and a hanging one, and a Prometheus API."""

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: dict | str, content_type: str = "application/json"):
        data = (json.dumps(body) if isinstance(body, dict) else body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/health":
            return self._send(200, {"status": "ok", "db": "up"})
        if url.path == "/ready":
            return self._send(503, {"status": "fail", "failing": ["database"]})
        if url.path == "/slow":
            time.sleep(int(query.get("ms", "200")) / 1000)
            return self._send(200, {"status": "ok"})
        if url.path == "/hang":
            RELEASE.wait(120)
            return self._send(200, {"status": "late"})
        if url.path == "/hang-once":  # hangs the first request for a key, answers the next ones
            key = query.get("key", "")
            if key not in HUNG_ONCE:
                HUNG_ONCE.add(key)
                RELEASE.wait(120)
            return self._send(200, {"status": "ok"})
        if url.path == "/echo":
            return self._send(
                200, {"authorization": self.headers.get("Authorization"), "token": self.headers.get("X-Token")}
            )
        if url.path == "/api/v1/query":
            return self._prometheus(query.get("query", ""))
        return self._send(404, {"detail": "not found"})

    def _prometheus(self, promql: str):
        if promql.startswith("bad("):
            return self._send(400, {"status": "error", "errorType": "bad_data", "error": "1:5: parse error: unclosed"})
        if promql == "nothing":
            return self._send(200, {"status": "success", "data": {"resultType": "vector", "result": []}})
        result = [
            {
                "metric": {"__name__": "errors", "path": "/api/sales/1/transition/", "status": "500"},
                "value": [1, "0.5"],
            },
            {"metric": {"__name__": "errors", "path": "/api/website/leads/", "status": "503"}, "value": [1, "0.2"]},
        ]
        return self._send(200, {"status": "success", "data": {"resultType": "vector", "result": result}})


@pytest.fixture(scope="session")
def http_service():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    RELEASE.set()
    server.shutdown()
    server.server_close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def closed_port_url():
    return f"http://127.0.0.1:{free_port()}"


def postgres_dsn() -> str:
    db = connections["default"].settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def subprocess_database_url() -> str:
    """DATABASE_URL for a worker or beat process started by a test: the test database."""
    db = connections["default"].settings_dict
    if db["ENGINE"] == "django.db.backends.postgresql":
        return postgres_dsn()
    return f"sqlite:///{Path(db['NAME']).resolve()}"


@pytest.fixture
def pg_dsn(db):
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL (CI does)")
    return postgres_dsn()


@pytest.fixture
def redis_url():
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("needs Redis: set REDIS_URL (CI does)")
    return url


def amqp_broker_url() -> str:
    """A RabbitMQ URL: AMQP_URL, or CELERY_BROKER_URL when it is amqp:// (.ci/run sets both)."""
    broker = os.environ.get("CELERY_BROKER_URL", "")
    return os.environ.get("AMQP_URL") or (broker if broker.startswith(("amqp://", "amqps://")) else "")


@pytest.fixture
def amqp_url():
    url = amqp_broker_url()
    if not url:
        pytest.skip("needs RabbitMQ: set AMQP_URL (CI does)")
    return url


@pytest.fixture(params=["redis", "amqp"])
def broker_url(request):
    """Each of the two production brokers in turn: Redis (REDIS_URL) and RabbitMQ (AMQP_URL)."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def redis_keys(redis_url):
    """A unique key prefix in the test Redis database, removed afterwards."""
    import uuid

    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    prefix = f"opsportal-test:{uuid.uuid4().hex[:8]}:"
    yield client, prefix
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


@pytest.fixture
def target(db, http_service):
    return ServiceFactory(name="Checkout API", slug="checkout-api", base_url=http_service)


def manual(title: str, **fields) -> dict:
    return {"title": title, **fields}


def auto(action: str, params: dict, title: str = "", **fields) -> dict:
    return {"title": title or f"{action} {params}", "kind": "automated", "action": action, "params": params, **fields}


def make_runbook(title: str = "Checkout checks", *, steps=(), services=(), alert_names=(), by=None) -> Runbook:
    spec = RunbookSpec(
        title=title,
        slug=slugify(title),
        alert_names=list(alert_names),
        services=[s.slug for s in services],
        sections=[SectionSpec("Diagnostics", kind="diagnostics")],
        steps=[StepSpec(**step) for step in steps],
    )
    return Runbook.create(spec, by=by)


def start_worker_process(command: list[str], env: dict) -> subprocess.Popen:
    """A `celery worker` subprocess in its own process group (its pool children die with it), its
    output kept in `process.lines`; returns once it says it is ready, fails the test otherwise."""
    process = subprocess.Popen(
        command, cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    ready = threading.Event()
    process.lines = []

    def read():
        for line in process.stdout:
            process.lines.append(line)
            if " ready." in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(60):
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("the worker did not start:\n" + "".join(process.lines[-30:]))
    return process


def wait_for(condition, *, timeout: float = 30, message: str = "condition"):
    """Polls until `condition()` is truthy (returns it); fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out waiting for {message}")
        time.sleep(0.05)


def purge_runbook_queue(*queues: str) -> None:
    """Empties the portal's queues on the configured broker (Redis, RabbitMQ or the filesystem),
    declared as the workers declare them (settings.CELERY_TASK_QUEUES) so RabbitMQ never sees one
    queue declared two ways."""
    from opsportal.celery import app

    with app.connection_for_write() as conn:
        for name in queues or ("runbooks", "first_look"):
            queue = app.amqp.queues[name] if name in app.amqp.queues else app.amqp.Queue(name)
            queue(conn.default_channel).declare()
            conn.default_channel.queue_purge(name)


@pytest.fixture(scope="module")
def worker_thread():
    """A real Celery worker in a thread, consuming the runbooks and first_look queues on the configured broker.
    One per test module: starting and stopping a worker costs seconds."""
    from celery.contrib.testing.worker import start_worker
    from celery.signals import task_postrun

    from opsportal.celery import app

    def close_connections(**kwargs):
        # The worker thread's connections would otherwise outlive the test database.
        connections.close_all()

    task_postrun.connect(close_connections, weak=False)
    purge_runbook_queue()
    # Starting a worker with queues= narrows what the app consumes for every later worker too.
    consume_from = app.amqp.queues._consume_from
    try:
        with start_worker(
            app,
            pool="solo",
            concurrency=1,
            perform_ping_check=False,
            queues=["runbooks", "first_look"],
            loglevel="WARNING",
            shutdown_timeout=30,
        ) as worker:
            yield worker
    finally:
        app.amqp.queues._consume_from = consume_from
        task_postrun.disconnect(close_connections)
        purge_runbook_queue()


@pytest.fixture
def celery_worker(worker_thread, transactional_db, settings):
    settings.RUNBOOK_STEP_RETRY_BACKOFF = 0
    purge_runbook_queue()
    yield worker_thread
    purge_runbook_queue()
