"""One error vocabulary: every domain error has one status and a body with `detail`, and the API,
the ops API, the ops console and the portal pages answer the same refusal with the same status."""

import pytest
from django.core.exceptions import PermissionDenied

from ops import approvals
from ops.models import FailedTask
from opsportal import errors
from opsportal.errors import (
    BadParameters,
    Conflict,
    DomainError,
    InvalidTransition,
    NotAllowed,
    StaleVersion,
    TargetMissing,
    Timeout,
    Transient,
    to_http,
)
from runbooks.actions import ActionError, ParamsError, StepTimeout, TransientError
from runbooks.models import RunbookRun
from tests.factories import UserFactory
from tests.runbooks.conftest import make_runbook, manual

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (DomainError, 400),
        (BadParameters, 400),
        (TargetMissing, 400),
        (NotAllowed, 403),
        (Conflict, 409),
        (InvalidTransition, 409),
        (StaleVersion, 409),
        (Transient, 503),
        (Timeout, 504),
        (ParamsError, 400),
        (ActionError, 409),
        (TransientError, 503),
        (StepTimeout, 504),
    ],
)
def test_each_error_maps_to_its_status_with_detail_and_extra(error, status):
    assert to_http(error("No.", version=3)) == (status, {"detail": "No.", "version": 3})


def test_permission_denied_is_403_like_not_allowed():
    assert to_http(PermissionDenied("Not you.")) == (403, {"detail": "Not you."})
    assert to_http(PermissionDenied())[1]["detail"]  # never an empty detail
    assert isinstance(NotAllowed("x"), PermissionDenied)


def test_params_error_is_still_a_value_error_and_anything_else_is_not_mapped():
    with pytest.raises(ValueError, match="bad"):
        raise ParamsError("bad")
    with pytest.raises(TypeError):
        to_http(KeyError("x"))


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_only_the_vocabulary_decides_statuses():
    """Subclasses in the apps inherit a status; none picks its own."""
    outside = [c for c in _subclasses(DomainError) if c.__module__ != errors.__name__ and "status_code" in vars(c)]
    assert outside == []


# The same refusals through the ops API, the ops console and a portal page.


@pytest.fixture
def second_admin(db):
    return UserFactory(username="second", role="admin", is_staff=True)


@pytest.fixture
def asked(admin_user):
    task = FailedTask.objects.create(task_id="t-errors", name="x.poison", queue="celery", exception="E")
    return approvals.ask("remove_task", {"ids": [task.pk]}, by=admin_user, reason="poison message")


def test_approving_ones_own_request_is_403_in_the_api_and_the_console(api_for, client, admin_user, asked):
    api = api_for("admin").post(f"/api/ops/requests/{asked.pk}/approve", {}, format="json")
    assert api.status_code == 403 and "another admin has to" in api.json()["detail"]
    client.force_login(admin_user)
    console = client.post(f"/ops/requests/{asked.pk}/approve/", **HX)
    assert console.status_code == 403 and "another admin has to" in console.content.decode()


def test_approving_ones_own_dangerous_step_is_403_on_the_portal(client, responder):
    run = RunbookRun.start(make_runbook(steps=[manual("Restart", safety="dangerous")]), by=responder)
    step = run.step_runs.get()
    client.force_login(responder)
    page = client.post(f"/runbooks/runs/{run.pk}/steps/{step.pk}/approve/", {}, **HX)
    assert page.status_code == 403 and "another responder has to" in page.content.decode()


def test_a_decided_request_is_409_in_the_api_and_the_console(api_for, client, second_admin, asked):
    approvals.reject(asked.pk, by=second_admin)
    api = api_for("admin").post(f"/api/ops/requests/{asked.pk}/reject", {}, format="json")
    assert api.status_code == 409 and "already" in api.json()["detail"]
    client.force_login(second_admin)
    console = client.post(f"/ops/requests/{asked.pk}/approve/", **HX)
    assert console.status_code == 409 and "already" in console.content.decode()


def test_a_transition_that_clashes_with_the_state_is_409_in_the_api_and_on_the_portal(api, client, responder, incident):
    incident.transition_to("acknowledged", by=responder)
    api_answer = api.post(f"/api/incidents/{incident.pk}/transition/", {"to": "acknowledged"}, format="json")
    assert api_answer.status_code == 409 and "already acknowledged" in api_answer.json()["detail"]
    client.force_login(responder)
    page = client.post(f"/incidents/{incident.pk}/transition/", {"to": "acknowledged"}, **HX)
    assert page.status_code == 409 and "already acknowledged" in page.content.decode()


def test_an_unreachable_target_is_503_in_the_api_and_the_console(api_for, client, admin_user, monkeypatch):
    def broker_down(*args, **kwargs):
        raise TransientError("The broker is not reachable: OperationalError")

    monkeypatch.setattr("ops.api.views.perform", broker_down)
    monkeypatch.setattr("ops.views.console.perform", broker_down)
    api = api_for("admin").post("/api/ops/jobs/pause", {"queue": "celery"}, format="json")
    assert api.status_code == 503 and api.json() == {"detail": "The broker is not reachable: OperationalError"}
    client.force_login(admin_user)
    console = client.post("/ops/queues/celery/pause/", **HX)
    assert console.status_code == 503 and "The broker is not reachable" in console.content.decode()


@pytest.mark.parametrize(
    "path", ["/api/ops/tasks?status=bogus", "/api/ops/requests?state=bogus", "/api/ops/queues?service=nope"]
)
def test_bad_query_parameters_are_400_with_detail(api_for, path):
    response = api_for("admin").get(path)
    assert response.status_code == 400 and response.json()["detail"]
