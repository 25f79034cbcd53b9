"""Alertmanager HA pairs deliver each notification twice, at the same moment: one incident, on the real PostgreSQL."""

import json
import threading

import pytest
from django.db import connection
from django.test import Client

from incidents.models import Alert, AlertDelivery, Incident, Integration
from tests.incidents.alerting.payloads import alert, alertmanager

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def deliver_concurrently(url: str, payloads: list[dict]) -> list[int]:
    barrier = threading.Barrier(len(payloads))
    statuses: list[int] = []

    def post(payload):
        try:
            barrier.wait(timeout=10)
            response = Client().post(url, json.dumps(payload), content_type="application/json")
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(p,)) for p in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return statuses


@pytest.mark.parametrize("rounds", range(3))
def test_concurrent_deliveries_of_one_group_open_one_incident(rounds):
    _, token = Integration.create(name="ha", kind="alertmanager")
    url = f"/api/integrations/alertmanager/{token}/"
    alerts = [alert(instance=f"api-{n}:8000") for n in range(3)]
    same = alertmanager(*alerts)
    # The two peers' notifications differ (receiver, order of alerts), so they are not one stored payload.
    peer = {**alertmanager(*reversed(alerts)), "receiver": "ops-portal-peer"}
    statuses = deliver_concurrently(url, [same, same, peer, {**peer, "receiver": "third"}])

    assert sorted(statuses) == [202, 202, 202, 202]
    assert Incident.objects.count() == 1
    assert Alert.objects.count() == 3
    assert AlertDelivery.objects.count() == 3  # the identical pair is stored once
    assert set(AlertDelivery.objects.values_list("state", flat=True)) == {"processed"}
    incident = Incident.objects.get()
    assert incident.events.filter(kind="alert").count() == 3
    assert incident.events.filter(body__startswith="Incident declared").count() == 1
