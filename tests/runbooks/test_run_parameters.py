"""Run parameters: placeholders asked for when a person starts a run, filled from alert labels on a
first look, refused when unsafe, and never run unfilled."""

from pathlib import Path

import pytest

from incidents.models import Alert, AlertGroup, Integration, TimelineEvent
from opsportal.errors import DomainError
from runbooks.importer import import_document
from runbooks.models import Runbook, RunbookRun
from tests.factories import IncidentFactory, ServiceFactory
from tests.runbooks.conftest import make_runbook

pytestmark = pytest.mark.django_db

FIXTURE = Path(__file__).parent / "fixtures" / "parameters.md"


@pytest.fixture
def orders(db):
    service = ServiceFactory(
        name="Orders API",
        slug="orders-api",
        base_url="http://orders.internal:8000",
        database_url="postgres://ro@db.internal/orders",
        prometheus_url="http://prometheus.internal:9090",
        # A host given for a run is still one the service lets its checks call (the HTTP target rule).
        http_hosts="status.psp.test, 10.0.0.7, p.test",
    )
    import_document(FIXTURE.read_bytes(), name="parameters.md", services=["orders-api"])
    return Runbook.objects.get(), service


@pytest.fixture
def as_user(client, user_for):
    def login(role):
        client.force_login(user_for(role))
        return client

    return login


def steps(run: RunbookRun) -> dict[str, object]:
    return {sr.step.title: sr for sr in run.step_runs.select_related("step", "run__target")}


def with_alert(incident, labels: dict, alertname: str = "OrdersReplicaLag"):
    integration, _ = Integration.create(name=f"am-{incident.pk}", kind="alertmanager")
    group = AlertGroup.objects.create(
        integration=integration, group_key="g", key_hash=f"h{incident.pk}", incident=incident
    )
    Alert.objects.create(
        integration=integration, group=group, incident=incident, fingerprint=f"f{len(labels)}", alertname=alertname,
        status="firing", starts_at=incident.detected_at, labels={"alertname": alertname, **labels},
    )  # fmt: skip


def test_the_api_shows_each_steps_parameters(orders, api_for):
    runbook, _ = orders
    body = api_for("viewer").get(f"/api/runbooks/{runbook.pk}/").json()
    declared = {s["title"]: [p["name"] for p in s["parameters"]] for s in body["steps"]}
    assert declared["Session details for one backend"] == ["pid"]
    assert declared["Replica lag on the alerting instance"] == ["instance"]
    assert declared["End the stuck session"] == ["pid"]
    assert [p["name"] for s in body["steps"] for p in s["parameters"] if p["context"] == "host"] == [
        "host",
        "payments_host",
    ]


def test_a_person_is_asked_for_every_value_an_automated_step_needs(orders, api_for):
    runbook, _ = orders
    response = api_for("responder").post("/api/runs/", {"runbook": runbook.pk}, format="json")
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "params.instance: needed by step 1" in detail and "params.pid: needed by step 4" in detail
    assert "params.payments_host: needed by step 3" in detail
    # The API's own host is the target's base URL unless given: not asked for.
    assert "params.host" not in detail
    assert not RunbookRun.objects.exists()


def test_given_values_fill_sql_as_literals_urls_hosts_and_commands(orders, api_for):
    runbook, _service = orders
    params = {"instance": "db-2:9187", "pid": "4242", "payments_host": "status.psp.test", "pod_name": "orders-7f9c"}
    response = api_for("responder").post("/api/runs/", {"runbook": runbook.pk, "params": params}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["params"] == params
    run = RunbookRun.objects.get()
    by_title = steps(run)
    assert by_title["Session details for one backend"].filled_params()["sql"].endswith("WHERE pid = 4242")
    query = by_title["Replica lag on the alerting instance"].filled_params()["query"]
    assert query == 'pg_replication_lag_seconds{instance="db-2:9187"}'
    api, payments = [sr for sr in run.step_runs.order_by("order") if sr.step.action == "http_check"]
    assert api.filled_params()["path"] == "/health" and "url" not in api.filled_params()  # the target's base URL
    assert payments.filled_params()["url"] == "https://status.psp.test/health"
    manual_logs = next(sr for sr in by_title.values() if "kubectl logs" in sr.step.command)
    assert manual_logs.command == "kubectl logs orders-7f9c -n <namespace> --tail=200"  # not given: as written
    started = TimelineEvent.objects.filter(kind="runbook").count()
    assert started == 0  # no incident: nothing on a timeline
    page = api_for("responder").get(f"/api/runs/{run.pk}/").json()
    assert page["params"]["pid"] == "4242"


def test_a_non_numeric_sql_value_goes_in_as_a_quoted_literal_checked_by_the_guard(db):
    runbook = make_runbook(
        steps=[
            {
                "title": "Orders of a customer",
                "kind": "automated",
                "action": "postgres_query",
                "params": {"sql": "SELECT id FROM orders WHERE customer = <customer> AND note = 'ref <customer>'"},
            }
        ]
    )
    target = ServiceFactory(database_url="postgres://ro@db/app")
    run = RunbookRun.start(runbook, by=None, target=target, params={"customer": "acme-42"})
    sql = run.step_runs.get().filled_params()["sql"]
    assert sql == "SELECT id FROM orders WHERE customer = 'acme-42' AND note = 'ref acme-42'"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("4242; DROP TABLE orders", "';'"),
        ("4242' OR '1'='1", '"\'"'),
        ("$(reboot)", "'$'"),
        ("`id`", "'`'"),
        ("a|b", "'|'"),
        ("1\n2", "U+000A"),
        ("two words", "U+0020"),
    ],
)
def test_an_unsafe_value_is_refused_naming_the_parameter_and_nothing_is_written(orders, api_for, value, shown):
    runbook, _ = orders
    params = {"instance": "db-2:9187", "pid": value, "payments_host": "status.psp.test"}
    response = api_for("responder").post("/api/runs/", {"runbook": runbook.pk, "params": params}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["detail"].startswith(f"params.pid: contains {shown}") and body["field"] == "params.pid"
    assert not RunbookRun.objects.exists()


def test_a_nul_in_a_value_is_a_400_naming_the_field(orders, api_for):
    runbook, _ = orders
    params = {"pid": "1\x002"}
    response = api_for("responder").post("/api/runs/", {"runbook": runbook.pk, "params": params}, format="json")
    assert response.status_code == 400 and "pid" in str(response.json())
    assert not RunbookRun.objects.exists()


@pytest.mark.parametrize("host", ["evil.test/x", "a b", "-bad-.test", "host:99999", "[::1]"])
def test_a_host_must_be_a_host_name_or_an_ip(orders, api_for, host):
    runbook, _ = orders
    params = {"instance": "db-2:9187", "pid": "1", "payments_host": host}
    response = api_for("responder").post("/api/runs/", {"runbook": runbook.pk, "params": params}, format="json")
    assert response.status_code == 400 and "params.payments_host" in response.json()["detail"]
    assert not RunbookRun.objects.exists()


def test_an_unknown_parameter_is_refused(orders, api_for):
    runbook, _ = orders
    response = api_for("responder").post(
        "/api/runs/", {"runbook": runbook.pk, "params": {"tenant": "x"}}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("params.tenant: Orders API: replica lag and stuck sessions has no such")


def test_a_first_look_fills_from_the_alerts_labels_and_leaves_out_what_they_do_not(orders):
    from runbooks.first_look import start_first_look

    _runbook, service = orders
    incident = IncidentFactory(services=[service])
    with_alert(incident, {"instance": "db-2:9187", "namespace": "orders", "pod": "orders-7f9c"})
    run = start_first_look(incident, "OrdersReplicaLag")
    titles = [sr.step.title for sr in run.step_runs.order_by("order")]
    # The PromQL query gets the alert's instance; the API check runs against the base URL; the
    # session query (pid) and the payments host have no label: left out, never run as written.
    assert titles == ["Replica lag on the alerting instance", "Diagnosis"]
    assert run.params == {"instance": "db-2:9187"}
    assert steps(run)["Replica lag on the alerting instance"].filled_params()["query"] == (
        'pg_replication_lag_seconds{instance="db-2:9187"}'
    )
    (event,) = TimelineEvent.objects.filter(incident=incident, kind="runbook").values_list("body", flat=True)
    assert "with instance `db-2:9187`" in event
    assert "Left out, for want of a value: step 3 **Diagnosis** needs payments_host; " in event
    assert "step 4 **Session details for one backend** needs pid." in event


def test_an_unsafe_label_value_fills_nothing(orders):
    from runbooks.first_look import start_first_look

    _runbook, service = orders
    incident = IncidentFactory(services=[service])
    with_alert(incident, {"instance": 'x"} or vector(1) #'})
    run = start_first_look(incident, "OrdersReplicaLag")
    assert [sr.step.title for sr in run.step_runs.all()] == ["Diagnosis"] and run.params == {}


def test_a_person_run_from_an_incident_takes_values_from_its_alert_labels(orders, responder):
    runbook, service = orders
    incident = IncidentFactory(services=[service])
    with_alert(incident, {"instance": "db-2:9187", "pid": "77"})
    run = RunbookRun.start(runbook, by=responder, incident=incident, params={"payments_host": "10.0.0.7"})
    assert run.params == {"instance": "db-2:9187", "pid": "77", "payments_host": "10.0.0.7"}
    (event,) = TimelineEvent.objects.filter(incident=incident, kind="runbook").values_list("body", flat=True)
    assert "with instance `db-2:9187`, payments_host `10.0.0.7`, pid `77`" in event


def test_the_start_form_asks_for_each_parameter_and_names_a_refused_one(orders, as_user):
    runbook, _ = orders
    client = as_user("responder")
    page = client.get(f"/runbooks/{runbook.pk}/").content.decode()
    for name in ("instance", "pid", "payments_host", "pod_name", "namespace", "host"):
        assert f'name="param_{name}"' in page
    bad = client.post(
        f"/runbooks/{runbook.pk}/run/", {"param_instance": "db-2", "param_pid": "1;2", "param_payments_host": "p.test"}
    )
    assert bad.status_code == 400 and "params.pid: contains &#x27;;&#x27;" in bad.content.decode()
    assert not RunbookRun.objects.exists()
    good = client.post(
        f"/runbooks/{runbook.pk}/run/",
        {"param_instance": "db-2", "param_pid": "12", "param_payments_host": "p.test", "param_pod_name": "web-1"},
    )
    run = RunbookRun.objects.get()
    assert good.status_code == 302 and run.params["pod_name"] == "web-1"
    live = client.get(f"/runbooks/runs/{run.pk}/").content.decode()
    assert "pid=12" in live and "kubectl logs web-1 -n &lt;namespace&gt; --tail=200" in live
    # What each automated step will run, with the run's values in.
    assert "http_check GET https://p.test/health" in live and "http_check GET /health" in live
    assert "prometheus_query pg_replication_lag_seconds{instance=&quot;db-2&quot;}" in live


def test_runbook_list_and_api_search_alert_names_through_their_rows(as_user, api_for, db):
    make_runbook("Booking", steps=[{"title": "a"}], alert_names=["RéservationÉchouée"])
    make_runbook("Quoted", steps=[{"title": "b"}], alert_names=['Disk "data" full'])
    make_runbook("Other", steps=[{"title": "c"}], alert_names=["DiskFull"])
    client = as_user("viewer")
    assert "Booking" in client.get("/runbooks/", {"q": "réservationéchouée"}).content.decode()
    listed = client.get("/runbooks/", {"q": 'disk "data"'}).content.decode()
    assert "Quoted" in listed and "Other" not in listed
    titles = [r["title"] for r in api_for("viewer").get("/api/runbooks/", {"search": "RÉSERVATION"}).json()["results"]]
    assert titles == ["Booking"]


def test_a_given_host_the_service_does_not_list_is_refused_at_start(orders, responder):
    runbook, _service = orders
    params = {"instance": "db-2:9187", "pid": "4242", "payments_host": "evil.test", "pod_name": "orders-7f9c"}
    with pytest.raises(DomainError, match=r"evil\.test is not a host of service orders-api"):
        RunbookRun.start(runbook, by=responder, params=params)
    assert not RunbookRun.objects.exists()
