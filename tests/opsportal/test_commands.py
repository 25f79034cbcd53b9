import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from incidents.models import EscalationContact, Incident, Page, Schedule, Service, TimelineEvent
from incidents.oncall import on_call_at, with_rotations
from tests.factories import IncidentFactory

pytestmark = pytest.mark.django_db


def test_ensure_admin_prints_a_generated_password_once(capsys, monkeypatch):
    monkeypatch.delenv("OPSPORTAL_ADMIN_PASSWORD", raising=False)
    call_command("ensure_admin")
    first = capsys.readouterr().out
    password = first.split("password: ")[1].split()[0]
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password)
    assert admin.groups.filter(name="admin").exists()
    call_command("ensure_admin")
    assert "already exists" in capsys.readouterr().out
    admin.refresh_from_db()
    assert admin.check_password(password)


def test_ensure_admin_takes_the_password_from_the_environment(capsys, monkeypatch):
    monkeypatch.setenv("OPSPORTAL_ADMIN_PASSWORD", "correct-horse-battery")
    call_command("ensure_admin")
    assert "correct-horse-battery" not in capsys.readouterr().out
    assert get_user_model().objects.get(username="admin").check_password("correct-horse-battery")


def test_load_demo_is_idempotent():
    from runbooks.models import Runbook, RunbookVersion

    def counts():
        return (
            Service.objects.count(),
            Incident.objects.count(),
            TimelineEvent.objects.count(),
            Runbook.objects.count(),
            RunbookVersion.objects.count(),
        )

    call_command("load_demo")
    first = counts()
    call_command("load_demo")
    assert counts() == first
    assert first[1] == 2 and Incident.objects.filter(status="investigating").count() == 1
    assert first[3] > 20 and first[4] == first[3]  # every seed runbook once, one version each
    assert Runbook.objects.answering("APIHigh5xxRate").filter(services__slug="cosmetica-api").exists()


@pytest.fixture
def eager_tasks():
    from opsportal.celery import app as celery_app

    celery_app.conf.task_always_eager = True  # pages are sent in-process
    yield
    celery_app.conf.task_always_eager = False


def test_load_demo_pages_whoever_the_primary_rotation_puts_on_call(
    capsys, monkeypatch, eager_tasks, django_capture_on_commit_callbacks
):
    """make run's demo: the first alert pages the on-call person at once, with an acknowledge link."""
    monkeypatch.setenv("OPSPORTAL_ADMIN_PASSWORD", "correct-horse-battery")
    call_command("ensure_admin")
    call_command("load_demo")
    call_command("load_demo")
    assert "Demo schedule 'Primary' already loaded." in capsys.readouterr().out
    now = timezone.now()
    [schedule] = with_rotations(Schedule.objects.all(), now, now + timedelta(seconds=1))
    [layer] = schedule.layers.all()
    assert (layer.shift_unit, layer.shift_length, layer.handoff_time.hour) == ("weeks", 1, 9)
    assert sorted(p.user.username for p in layer.participants.all()) == ["admin", "alice", "bob"]
    assert on_call_at(schedule, now).user.username == "admin"  # the one who can sign in
    assert EscalationContact.objects.get(level=1).schedule == schedule
    # The demo incidents were paged to the on-call person, not warned about as unrouted.
    assert {(p.user.username, p.via) for p in Page.objects.all()} == {("admin", "schedule Primary")}
    assert not Page.objects.filter(state="unrouted").exists()
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        incident = IncidentFactory(title="Checkout 5xx", severity="SEV1")
    [message] = mail.outbox  # sent at commit, not left for the next sweep
    assert message.to == ["admin@example.com"]
    assert re.search(r"Acknowledge \(one click, then confirm\): http://\S+/incidents/page/\S+/", message.body)
    assert Page.objects.get(incident=incident).state == "sent"
