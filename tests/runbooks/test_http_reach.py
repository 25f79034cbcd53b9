"""HTTP checks reach only their service, send only its declared secrets, and never leak them.

Against a local echo server (loopback only) that returns every header it got, also base64-,
URL- and hex-encoded, and redirects where it is told to."""

import base64
import contextlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from django.core.exceptions import ValidationError

from incidents.models import Service
from opsportal.connections import Masker
from opsportal.errors import DomainError
from runbooks.actions import ACTIONS, ActionError, ParamsError, Target
from runbooks.models import RunbookRun
from runbooks.tasks import run_step
from tests.factories import ServiceFactory
from tests.runbooks.conftest import auto, make_runbook

SECRET = "tok-7Hq2mZ9xW4pL"


class Echo(BaseHTTPRequestHandler):
    seen: list = []  # (path, headers) of every request, replaced per server

    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urlsplit(self.path)
        self.seen.append((url.path, dict(self.headers)))
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", query["to"])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        headers = dict(self.headers)
        body = json.dumps(
            {
                "headers": headers,
                "base64": {k: base64.b64encode(v.encode()).decode() for k, v in headers.items()},
                "wrapped_base64": base64.b64encode(json.dumps(headers).encode()).decode(),
                "urlencoded": {k: quote(v, safe="") for k, v in headers.items()},
                "hex": {k: v.encode().hex() for k, v in headers.items()},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)


@pytest.fixture
def echo():
    """The echo server on 127.0.0.1 and the list of requests it got."""
    handler = type("EchoHandler", (Echo,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.seen
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake_dns(monkeypatch):
    """Names of our choosing resolve where the test says; everything else as usual."""
    names: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in names:
            return [
                (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in names[host]
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


def check(params: dict, service: Service, timeout: float = 5):
    action = ACTIONS["http_check"]
    masker = Masker()
    result = action.run(action.validate(params), Target(service, masker), timeout)
    return result, masker


def service(base_url: str, **fields) -> Service:
    return Service(slug="checkout", name="Checkout", base_url=base_url, **fields)


# --- env: values -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["SECRET_KEY", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"])
def test_the_workers_own_settings_are_never_sent_whatever_the_service_declares(echo, monkeypatch, name):
    url, seen = echo
    monkeypatch.setenv(name, "worker-secret-value-123")
    params = {"path": "/echo", "headers": {"X-Token": f"env:{name}"}}
    with pytest.raises(ParamsError, match=f"headers.X-Token: {name} is the portal's own setting"):
        ACTIONS["http_check"].validate(params)
    declared = service(url, secret_names=name)  # a declaration that slipped past the admin form
    with pytest.raises(ValidationError, match=f"{name} is the portal's own setting"):
        declared.clean_fields()
    with pytest.raises(ActionError, match=f"{name} is the portal's own setting"):
        ACTIONS["http_check"].run({**params, "method": "GET", "expected_status": 200, "max_latency_ms": 1000},
                                  Target(declared, Masker()), 5)  # fmt: skip
    assert seen == []


def test_env_values_come_only_from_the_secrets_the_service_declares(echo, monkeypatch):
    url, seen = echo
    monkeypatch.setenv("CHECKOUT_TOKEN", SECRET)
    monkeypatch.setenv("PAYMENTS_TOKEN", "tok-of-another-service")
    params = {"path": "/echo", "headers": {"X-Token": "env:PAYMENTS_TOKEN"}}
    with pytest.raises(ActionError, match=r"PAYMENTS_TOKEN, which is not one of the secrets .*\(CHECKOUT_TOKEN\)"):
        check(params, service(url, secret_names="CHECKOUT_TOKEN"))
    assert seen == []
    result, _ = check(
        {"path": "/echo", "headers": {"X-Token": "env:CHECKOUT_TOKEN"}}, service(url, secret_names="CHECKOUT_TOKEN")
    )
    assert result.status == "ok" and seen[0][1]["X-Token"] == SECRET


def test_a_literal_credential_header_is_refused_when_the_runbook_is_saved(api_for):
    step = auto("http_check", {"path": "/health", "headers": {"Authorization": "Bearer abc123"}}, title="x")
    payload = {"title": "Leaky", "sections": [{"title": "S"}], "steps": [step]}
    response = api_for("admin").post("/api/runbooks/", payload, format="json")
    assert response.status_code == 400
    assert "steps[0].params" in str(response.json()) and "headers.Authorization carries credentials" in str(
        response.json()
    )


@pytest.mark.django_db
def test_a_step_sending_the_secret_key_is_refused_through_the_api_with_the_field_named(api_for):
    step = auto("http_check", {"path": "/health", "headers": {"X-Key": "env:SECRET_KEY"}}, title="x")
    payload = {"title": "Exfiltrate", "sections": [{"title": "S"}], "steps": [step]}
    response = api_for("admin").post("/api/runbooks/", payload, format="json")
    assert response.status_code == 400 and "headers.X-Key: SECRET_KEY is the portal's own setting" in str(
        response.json()
    )


# --- masking ---------------------------------------------------------------------------------


def test_an_echoed_secret_is_masked_in_every_common_encoding(echo, monkeypatch):
    url, seen = echo
    monkeypatch.setenv("CHECKOUT_TOKEN", SECRET)
    result, masker = check(
        {"path": "/echo", "headers": {"X-Token": "env:CHECKOUT_TOKEN"}, "show_output": True},
        service(url, secret_names="CHECKOUT_TOKEN"),
    )
    body = json.loads(json.dumps(seen[0][1]))  # what the server got, to compute each encoding it sent back
    assert body["X-Token"] == SECRET
    shown = masker(result.output) + json.dumps(masker.data(result.as_json()))
    encodings = [
        SECRET,
        base64.b64encode(SECRET.encode()).decode(),
        quote(SECRET, safe=""),
        SECRET.encode().hex(),
    ]
    for encoded in encodings:
        assert encoded not in shown
    assert "***" in shown


def test_masking_finds_a_secret_inside_a_longer_base64_text():
    masker = Masker()
    masker.add(SECRET)
    for prefix in ["", "a", "ab", '{"X-Token": "']:
        text = base64.b64encode(f'{prefix}{SECRET}", "other": 1}}'.encode()).decode()
        assert "***" in masker(text)
        assert SECRET[2:-2] not in base64.b64decode(masker(text).split("***")[0] + "==", validate=False).decode(
            errors="ignore"
        )


# --- hosts and addresses ---------------------------------------------------------------------


def test_a_check_calls_only_its_services_hosts(echo):
    url, seen = echo
    port = url.rsplit(":", 1)[1]
    # localhost is the same machine but another host name: not the service's.
    with pytest.raises(ActionError, match=r"localhost is not a host of service checkout \(127\.0\.0\.1\)"):
        check({"url": f"http://localhost:{port}/echo"}, service(url))
    assert seen == []
    result, _ = check({"url": f"http://localhost:{port}/echo"}, service(url, http_hosts="localhost"))
    assert result.status == "ok" and len(seen) == 1


def test_a_run_is_refused_before_it_starts_when_a_url_is_on_an_unlisted_host(responder):
    target = ServiceFactory(slug="shop", base_url="https://shop.example.com")
    runbook = make_runbook(steps=[auto("http_check", {"url": "http://169.254.169.254/latest/meta-data/"})])
    with pytest.raises(DomainError, match=r"169\.254\.169\.254 is not a host of service shop"):
        RunbookRun.start(runbook, by=responder, target=target)
    assert not RunbookRun.objects.exists()


@pytest.mark.parametrize(
    ("host", "addresses"),
    [
        ("metadata.example.test", ["169.254.169.254"]),  # cloud metadata through a friendly name
        ("sneaky.example.test", ["93.184.215.14", "127.0.0.1"]),  # one bad address among good ones
        ("mapped.example.test", ["::ffff:127.0.0.1"]),
        ("v6.example.test", ["::1"]),
        ("anywhere.example.test", ["0.0.0.0"]),
        ("alibaba.example.test", ["100.100.100.200"]),
        ("aws6.example.test", ["fd00:ec2::254"]),
    ],
)
def test_dns_cannot_smuggle_in_an_internal_address(fake_dns, echo, host, addresses):
    url, seen = echo
    fake_dns["api.example.test"] = ["93.184.215.14"]
    fake_dns[host] = addresses
    svc = service("https://api.example.test", http_hosts=host)
    with pytest.raises(ActionError, match="a loopback, link-local or metadata address"):
        check({"url": f"http://{host}:{url.rsplit(':', 1)[1]}/echo"}, svc)
    assert seen == []


@pytest.mark.parametrize("literal", ["169.254.169.254", "127.0.0.1", "[::1]"])
def test_a_listed_internal_address_is_refused_when_the_base_url_is_not_internal(fake_dns, literal):
    fake_dns["api.example.test"] = ["93.184.215.14"]
    svc = service("https://api.example.test", http_hosts=literal)
    with pytest.raises(ActionError, match="a loopback, link-local or metadata address"):
        check({"url": f"http://{literal}/latest/meta-data/"}, svc)


def test_the_connection_goes_to_the_checked_address_under_the_services_name(fake_dns, echo):
    url, seen = echo
    port = url.rsplit(":", 1)[1]
    fake_dns["checkout.internal.test"] = ["127.0.0.1"]  # the service itself is on loopback: allowed
    result, _ = check({"path": "/echo"}, service(f"http://checkout.internal.test:{port}"))
    assert result.status == "ok" and seen[0][1]["Host"] == f"checkout.internal.test:{port}"


# --- redirects -------------------------------------------------------------------------------


def test_a_redirect_to_the_same_host_is_followed(echo):
    url, seen = echo
    result, _ = check({"path": f"/redirect?to={quote(url + '/echo')}"}, service(url))
    assert result.status == "ok" and [path for path, _ in seen] == ["/redirect", "/echo"]


def test_a_redirect_to_another_host_is_not_followed(echo):
    url, seen = echo
    port = url.rsplit(":", 1)[1]
    elsewhere = f"http://localhost:{port}/echo"
    result, _ = check({"path": f"/redirect?to={quote(elsewhere)}"}, service(url, http_hosts="localhost"))
    assert result.status == "critical" and result.figures["status_code"] == 302
    assert f"redirect to {elsewhere} not followed: another host" in result.summary
    assert [path for path, _ in seen] == ["/redirect"]


def test_a_redirect_is_never_followed_with_credentials(echo, monkeypatch):
    url, seen = echo
    monkeypatch.setenv("CHECKOUT_TOKEN", SECRET)
    params = {"path": f"/redirect?to={quote(url + '/echo')}", "headers": {"X-Token": "env:CHECKOUT_TOKEN"}}
    result, _ = check(params, service(url, secret_names="CHECKOUT_TOKEN"))
    assert result.figures["status_code"] == 302 and "not followed: the request carries credentials" in result.summary
    assert [path for path, _ in seen] == ["/redirect"]


# --- who sees the output ---------------------------------------------------------------------


@pytest.fixture
def echoed_run(echo, monkeypatch, responder, incident):
    """A run whose first step sent a secret and whose second did not, both done."""
    url, _ = echo
    monkeypatch.setenv("CHECKOUT_TOKEN", SECRET)
    target = ServiceFactory(slug="checkout", base_url=url, secret_names="CHECKOUT_TOKEN")
    steps = [
        auto("http_check", {"path": "/echo", "headers": {"X-Token": "env:CHECKOUT_TOKEN"}}, title="Authenticated"),
        auto("http_check", {"path": "/echo"}, title="Anonymous"),
        auto("http_check", {"path": "/echo", "headers": {"X-Token": "env:CHECKOUT_TOKEN"}, "show_output": True},
             title="Marked safe to show"),
    ]  # fmt: skip
    run = RunbookRun.start(make_runbook(steps=steps, services=[target]), by=responder, incident=incident)
    for step_run in run.step_runs.order_by("order"):
        run_step(step_run.pk, 1)
    return run


@pytest.mark.django_db
def test_viewers_do_not_see_what_an_authenticated_request_returned(echoed_run, api_for):
    as_viewer = api_for("viewer").get(f"/api/runs/{echoed_run.pk}/").json()["steps"]
    assert [s["state"] for s in as_viewer] == ["succeeded"] * 3
    authenticated, anonymous, shown = as_viewer
    assert authenticated["output_hidden"] and authenticated["output"] == ""
    assert "body_excerpt" not in authenticated["result"] and authenticated["result"]["figures"]["status_code"] == 200
    assert not anonymous["output_hidden"] and "User-Agent" in anonymous["output"]
    assert not shown["output_hidden"] and "X-Token" in shown["output"] and SECRET not in shown["output"]
    as_responder = api_for("responder").get(f"/api/runs/{echoed_run.pk}/").json()["steps"]
    assert not as_responder[0]["output_hidden"] and "X-Token" in as_responder[0]["output"]
    assert SECRET not in json.dumps(as_responder)


@pytest.mark.django_db
def test_the_run_page_hides_an_authenticated_answer_from_viewers(echoed_run, client, viewer, responder):
    client.force_login(viewer)
    page = client.get(f"/runbooks/runs/{echoed_run.pk}/").content.decode()
    assert page.count('data-testid="output-hidden"') == 1 and "X-Token" in page  # only the step marked safe
    client.force_login(responder)
    page = client.get(f"/runbooks/runs/{echoed_run.pk}/").content.decode()
    assert 'data-testid="output-hidden"' not in page and SECRET not in page


# --- the service's fields --------------------------------------------------------------------


@pytest.mark.django_db
def test_admins_edit_a_services_hosts_and_secrets(admin_client):
    svc = ServiceFactory(slug="orders", name="Orders")
    form = admin_client.get(f"/admin/incidents/service/{svc.pk}/change/").content.decode()
    assert 'name="http_hosts"' in form and 'name="secret_names"' in form
    data = {"name": "Orders", "slug": "orders", "http_hosts": "status.example.com, api.example.com",
            "secret_names": "ORDERS_TOKEN"}  # fmt: skip
    assert admin_client.post(f"/admin/incidents/service/{svc.pk}/change/", data).status_code == 302
    svc.refresh_from_db()
    assert svc.extra_http_hosts == {"status.example.com", "api.example.com"}
    assert svc.declared_secrets == ["ORDERS_TOKEN"]
    refused = admin_client.post(
        f"/admin/incidents/service/{svc.pk}/change/",
        {**data, "http_hosts": "https://evil.example.com/x", "secret_names": "SECRET_KEY"},
    ).content.decode()
    assert "is not a host name" in refused and "SECRET_KEY is the portal&#x27;s own setting" in refused
    svc.refresh_from_db()
    assert svc.declared_secrets == ["ORDERS_TOKEN"]
