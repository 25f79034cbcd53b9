import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from incidents.models import Integration
from opsportal.celery import app as celery_app
from tests.factories import ServiceFactory


@pytest.fixture(autouse=True)
def eager_tasks():
    """Tasks run in-process (the intake's queueing included); a real worker is tested separately."""
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager = False
    celery_app.conf.task_eager_propagates = False


@pytest.fixture
def service(db):
    return ServiceFactory(name="Cosmetica API", slug="cosmetica-api")


@pytest.fixture
def integration_and_token(db):
    return Integration.create(name="prod-alertmanager", kind="alertmanager")


@pytest.fixture
def integration(integration_and_token):
    return integration_and_token[0]


@pytest.fixture
def post_alerts(client, integration_and_token):
    """POST a payload to the integration's URL the way Alertmanager does."""
    integration, token = integration_and_token

    def post(payload, *, token=token, kind=integration.kind, raw: bytes | None = None, **extra):
        import json

        body = raw if raw is not None else json.dumps(payload)
        return client.post(f"/api/integrations/{kind}/{token}/", body, content_type="application/json", **extra)

    return post


class Receiver:
    """A webhook receiver that answers with scripted status codes and keeps what it got."""

    def __init__(self, port: int, statuses: list[int]):
        self.statuses = list(statuses)
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"headers": dict(self.headers), "body": body})
                status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"nope" if status >= 400 else b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{port}/hooks/ops"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    servers = []

    def start(statuses, port=18610):
        server = Receiver(port + len(servers), statuses)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
