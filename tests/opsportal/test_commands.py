import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from incidents.models import Incident, Service, TimelineEvent

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
