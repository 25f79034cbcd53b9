"""Re-importing a document keeps what was edited in the portal; alert names match as a relation."""

import unicodedata

import pytest

from runbooks.importer import import_document
from runbooks.models import Runbook, RunbookAlert
from tests.factories import ServiceFactory

pytestmark = pytest.mark.django_db

DOC = """# Orders

## Orders queue backlog

- **Alert Name:** `OrdersQueueBacklog`

```bash
kubectl get pods -n orders
```

```bash
kubectl rollout restart deployment/orders-worker -n orders
```
"""


def imported() -> Runbook:
    import_document(DOC, name="orders.md")
    return Runbook.objects.get(slug="orders-orders-queue-backlog")


def edit(client, runbook, **body):
    response = client.patch(f"/api/runbooks/{runbook.pk}/", body, format="json")
    assert response.status_code == 200, response.content
    runbook.refresh_from_db()
    return response.json()


def test_reimporting_an_unchanged_document_keeps_portal_edits(api_for):
    ServiceFactory(slug="orders-api", name="Orders API")
    runbook = imported()
    admin = api_for("admin")
    # What the API answers carries nulls its input does not take (timeout, target_service): left out.
    steps = [{k: v for k, v in step.items() if v is not None} for step in edit(admin, runbook)["steps"]]
    steps[0]["target_service"] = "orders-api"
    steps[1]["safety"] = "change"  # the team decided a rolling restart of this worker is routine
    edit(admin, runbook, alert_names=["OrdersQueueBacklog", "OrdersConsumerLag"], severity="SEV2", steps=steps)
    version = runbook.version

    report = import_document(DOC, name="orders.md")

    runbook.refresh_from_db()
    assert report.runbooks[0].status == "unchanged" and runbook.version == version
    assert runbook.alert_names == ["OrdersQueueBacklog", "OrdersConsumerLag"] and runbook.severity == "SEV2"
    stored = list(runbook.current_version.steps.order_by("order"))
    assert stored[0].target_service.slug == "orders-api" and stored[1].safety == "change"
    assert set(Runbook.objects.answering("OrdersConsumerLag")) == {runbook}


def test_a_changed_document_keeps_the_edits_it_did_not_touch(api_for):
    runbook = imported()
    admin = api_for("admin")
    edit(admin, runbook, alert_names=["OrdersQueueBacklog", "OrdersConsumerLag"])
    changed = DOC.replace("kubectl get pods -n orders", "kubectl get pods -n orders -o wide").replace(
        "- **Alert Name:** `OrdersQueueBacklog`", "- **Alert Name:** `OrdersQueueBacklog`\n- **Severity:** critical"
    )
    report = import_document(changed, name="orders.md")
    runbook.refresh_from_db()
    assert report.runbooks[0].status == "updated"
    assert runbook.alert_names == ["OrdersQueueBacklog", "OrdersConsumerLag"]  # untouched by the change
    assert runbook.severity == "SEV1"  # the change set it
    assert runbook.current_version.steps.order_by("order")[0].command == "kubectl get pods -n orders -o wide"
    # The document changing the alert names wins over the portal's edit of them.
    renamed = changed.replace("`OrdersQueueBacklog`", "`OrdersBacklog`")
    import_document(renamed, name="orders.md")
    runbook.refresh_from_db()
    assert runbook.alert_names == ["OrdersBacklog"]
    assert list(RunbookAlert.objects.filter(runbook=runbook).values_list("name", flat=True)) == ["OrdersBacklog"]


@pytest.mark.parametrize(
    "asked",
    [
        "RéservationÉchouée",
        unicodedata.normalize("NFD", "RéservationÉchouée"),
        "réservationéchouée",
    ],
)
def test_alert_names_match_with_any_unicode(asked):
    import_document("# Café\n\n## Réservations\n\nAlert: RéservationÉchouée\n\n- check\n", name="cafe.md")
    assert [r.title for r in Runbook.objects.answering(asked)] == ["Réservations"]


def test_alert_names_with_quotes_match_and_a_prefix_does_not():
    import_document('# X\n\n## Quoted\n\n- **Alert Name:** `Disk"Full`\n\n- look\n', name="x.md")
    assert [r.title for r in Runbook.objects.answering('Disk"Full')] == ["Quoted"]
    assert list(Runbook.objects.answering("Disk")) == []
