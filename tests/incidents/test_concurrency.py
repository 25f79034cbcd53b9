"""Row locks on the real PostgreSQL: two responders acknowledging at the same moment."""

import threading

import pytest
from django.db import connection

from incidents.models import Incident
from opsportal.errors import InvalidTransition
from tests.factories import IncidentFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_concurrent_acknowledgements_one_wins():
    incident = IncidentFactory()
    users = [UserFactory(username="a", role="responder"), UserFactory(username="b", role="responder")]
    barrier = threading.Barrier(2)
    results: list[str] = []

    def acknowledge(user):
        try:
            barrier.wait(timeout=10)
            Incident.objects.get(pk=incident.pk).transition_to("acknowledged", by=user)
            results.append("ok")
        except InvalidTransition as exc:
            results.append(str(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=acknowledge, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert len(results) == 2 and results.count("ok") == 1
    assert "already acknowledged" in next(r for r in results if r != "ok")
    assert incident.events.filter(kind="status_change", body__contains="acknowledged").count() == 1
