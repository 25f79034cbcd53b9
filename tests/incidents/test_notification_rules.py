"""People edit their own notification rules on the portal (/incidents/schedules/people/<name>/notifications/):
channel and delay, a personal webhook URL; clear 400s for bad input; only the person or an admin."""

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from incidents.models import NotificationRule, Page, WebhookDelivery, WebhookEndpoint
from incidents.models.alerts import portal_base_url
from incidents.models.paging import PERSONAL_WEBHOOK, RULES_MAX
from opsportal.celery import app as celery_app
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(db):
    return UserFactory(username="alice", email="alice@example.com", role="responder")


@pytest.fixture
def as_alice(client, alice):
    client.force_login(alice)
    return client


URL = "/incidents/schedules/people/alice/notifications/"


def add(client, **fields):
    data = {"new-channel": "email", "new-delay_minutes": "0", "new-url": "", "new-format": "json"}
    data |= {f"new-{k}": v for k, v in fields.items()}
    return client.post(URL, data)


def edit(client, rule, **fields):
    data = {f"rule-{rule.pk}-{k}": v for k, v in {"format": "json", "url": "", **fields}.items()}
    return client.post(f"{URL}{rule.pk}/", data)


def test_without_rules_the_page_says_email_at_once_and_the_top_bar_links_it(as_alice):
    response = as_alice.get(URL)
    assert response.status_code == 200
    body = response.content.decode()
    assert "No rules: e-mail at once." in body and "alice@example.com" in body
    assert 'data-testid="my-notification-rules"' in body and f'href="{URL}"' in body


def test_adding_an_email_rule_with_a_delay(as_alice, alice):
    response = add(as_alice, channel="email", delay_minutes="5")
    assert response.status_code == 302 and response["Location"] == URL
    [rule] = NotificationRule.objects.filter(user=alice)
    assert (rule.channel, rule.delay_minutes, rule.endpoint) == ("email", 5, None)
    page = as_alice.get(URL).content.decode()
    assert "Saved: e-mail after 5 min." in page and "E-mail after 5 min" in page


def test_a_personal_webhook_gets_its_own_endpoint_edited_and_removed_with_it(as_alice, alice):
    assert add(as_alice, channel="webhook", url="https://chat.example/hooks/abc", delay_minutes="2").status_code == 302
    rule = NotificationRule.objects.get(user=alice)
    endpoint = rule.endpoint
    assert endpoint.name.startswith(f"{PERSONAL_WEBHOOK}alice") and endpoint.events == []
    assert (endpoint.url, endpoint.format, rule.delay_minutes) == ("https://chat.example/hooks/abc", "json", 2)
    assert "https://chat.example/hooks/abc" in as_alice.get(URL).content.decode()

    assert edit(as_alice, rule, channel="webhook", url="https://push.example/p", delay_minutes="3").status_code == 302
    rule.refresh_from_db()
    assert rule.endpoint_id == endpoint.pk and rule.endpoint.url == "https://push.example/p" and rule.delay_minutes == 3

    assert edit(as_alice, rule, channel="email", delay_minutes="0").status_code == 302
    rule.refresh_from_db()
    assert rule.channel == "email" and rule.endpoint is None
    assert not WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


def test_an_admins_shared_endpoint_is_never_changed_from_the_page(as_alice, alice):
    shared = WebhookEndpoint.objects.create(name="#oncall channel", url="https://chat.example/team", events=[])
    rule = NotificationRule.objects.create(user=alice, channel="webhook", endpoint=shared)
    assert edit(as_alice, rule, channel="webhook", url="https://mine.example/", delay_minutes="0").status_code == 302
    rule.refresh_from_db()
    shared.refresh_from_db()
    assert shared.url == "https://chat.example/team"
    assert rule.endpoint != shared and rule.endpoint.url == "https://mine.example/"


def test_deleting_a_rule_keeps_the_delivery_log_of_its_webhook(as_alice, alice):
    add(as_alice, channel="webhook", url="https://chat.example/hooks/abc")
    rule = NotificationRule.objects.get(user=alice)
    WebhookDelivery.objects.create(
        endpoint=rule.endpoint, event="incident.paged", source_key="page:1", payload={}, retry_until=timezone.now()
    )
    response = as_alice.post(f"{URL}{rule.pk}/delete/")
    assert response.status_code == 302
    assert not NotificationRule.objects.filter(user=alice).exists()
    endpoint = WebhookEndpoint.objects.get(pk=rule.endpoint_id)
    assert endpoint.enabled is False and endpoint.deliveries.count() == 1
    assert "Deleted: personal webhook at once." in as_alice.get(URL).content.decode()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"channel": "webhook", "url": "ftp://files.example/x"},
            "The webhook URL must be a full http:// or https:// address.",
        ),
        ({"channel": "webhook", "url": "javascript:alert(1)"}, "The webhook URL must"),
        ({"channel": "webhook", "url": ""}, "A personal webhook rule needs the webhook&#x27;s URL."),
        ({"delay_minutes": "1441"}, "The delay is at most 1440 minutes (a day)."),
        ({"delay_minutes": "-1"}, "The delay is 0 (at once) or more minutes."),
        ({"delay_minutes": "soon"}, "The delay is a whole number of minutes."),
        ({"delay_minutes": ""}, "Say after how many minutes (0: at once)."),
        ({"channel": "sms"}, "Select a valid choice."),
        ({"channel": "webhook", "url": "https://x.example/", "format": "nope"}, "Select a valid choice."),
        ({"channel": "webhook", "url": "https://x.example/\x00"}, "new-url: must not contain NUL characters"),
    ],
)
def test_bad_input_is_a_400_naming_the_problem_and_writes_nothing(as_alice, alice, fields, message):
    response = add(as_alice, **fields)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not NotificationRule.objects.exists() and not WebhookEndpoint.objects.exists()


def test_an_email_rule_needs_an_address(client):
    bob = UserFactory(username="bob", email="", role="responder")
    client.force_login(bob)
    response = client.post(
        "/incidents/schedules/people/bob/notifications/", {"new-channel": "email", "new-delay_minutes": "0"}
    )
    assert response.status_code == 400
    assert "You have no e-mail address on file" in response.content.decode()
    assert not NotificationRule.objects.exists()


def test_bad_edit_is_a_400_beside_that_rule_and_changes_nothing(as_alice, alice):
    rule = NotificationRule.objects.create(user=alice, channel="email", delay_minutes=5)
    response = edit(as_alice, rule, channel="email", delay_minutes="5000")
    assert response.status_code == 400
    assert "The delay is at most 1440 minutes" in response.content.decode()
    rule.refresh_from_db()
    assert rule.delay_minutes == 5


def test_at_most_rules_max_rules(as_alice, alice):
    for minutes in range(RULES_MAX):
        NotificationRule.objects.create(user=alice, channel="email", delay_minutes=minutes)
    response = add(as_alice, delay_minutes="30")
    assert response.status_code == 400
    assert f"You have {RULES_MAX} notification rules already" in response.content.decode()
    assert NotificationRule.objects.filter(user=alice).count() == RULES_MAX


@pytest.mark.parametrize("role", ["viewer", "responder"])
def test_someone_else_is_refused_and_changes_nothing(client, alice, role):
    rule = NotificationRule.objects.create(user=alice, channel="email", delay_minutes=5)
    client.force_login(UserFactory(username="mallory", role=role))
    assert client.get(URL).status_code == 403
    assert add(client, delay_minutes="1").status_code == 403
    assert edit(client, rule, channel="email", delay_minutes="0").status_code == 403
    assert client.post(f"{URL}{rule.pk}/delete/").status_code == 403
    rule.refresh_from_db()
    assert rule.delay_minutes == 5 and NotificationRule.objects.count() == 1


def test_an_admin_may_edit_anyones_rules(client, alice, admin_user):
    client.force_login(admin_user)
    assert client.get(URL).status_code == 200
    assert add(client, delay_minutes="7").status_code == 302
    assert NotificationRule.objects.get(user=alice).delay_minutes == 7


def test_anonymous_is_sent_to_sign_in(client, alice):
    response = client.get(URL)
    assert response.status_code == 302 and "/login" in response["Location"]
    assert add(client).status_code == 302 and not NotificationRule.objects.exists()


def test_a_rule_of_someone_else_is_not_reachable_through_your_url(as_alice):
    bobs = NotificationRule.objects.create(user=UserFactory(username="bob", email="b@example.com"), channel="email")
    assert edit(as_alice, bobs, channel="email", delay_minutes="9").status_code == 404
    assert as_alice.post(f"{URL}{bobs.pk}/delete/").status_code == 404
    bobs.refresh_from_db()
    assert bobs.delay_minutes == 0


def test_unknown_person_is_404(as_alice):
    assert as_alice.get("/incidents/schedules/people/nobody/notifications/").status_code == 404


def test_query_count_does_not_grow_with_the_rules(as_alice, alice):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert as_alice.get(URL).status_code == 200
        return len(queries)

    add(as_alice, channel="webhook", url="https://chat.example/1")
    one = count()
    for n in range(2, 7):
        add(as_alice, channel="webhook", url=f"https://chat.example/{n}", delay_minutes=str(n))
    assert NotificationRule.objects.filter(user=alice).count() == 6
    assert count() == one


@pytest.fixture
def eager_tasks():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def test_a_test_page_goes_by_every_rule_at_once_and_once_a_minute(
    as_alice, alice, eager_tasks, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setattr("incidents.tasks.deliver_webhook.apply_async", lambda *a, **k: None)
    add(as_alice, channel="email", delay_minutes="0")
    add(as_alice, channel="webhook", url="https://chat.example/hooks/alice", delay_minutes="10")
    at = timezone.now().replace(second=5)  # both tries in one minute, whatever the clock says
    with time_machine.travel(at, tick=False), django_capture_on_commit_callbacks(execute=True):
        response = as_alice.post(f"{URL}test/")
    assert response.status_code == 302
    [message] = mail.outbox
    assert message.to == ["alice@example.com"] and message.subject.startswith("Test page from Ops Portal for alice")
    assert f"{portal_base_url()}{URL}" in message.body
    pages = Page.objects.filter(purpose="test", user=alice)
    assert {(p.channel, p.state, p.incident) for p in pages} == {("email", "sent", None), ("webhook", "sent", None)}
    assert pages.get(channel="webhook").delivery.event == "page.test"
    assert "Test page sent (2: e-mail, personal webhook)" in as_alice.get(URL).content.decode()

    with time_machine.travel(at + timedelta(seconds=50), tick=False), django_capture_on_commit_callbacks(execute=True):
        as_alice.post(f"{URL}test/")
    assert len(mail.outbox) == 1
    assert "less than a minute ago" in as_alice.get(URL).content.decode()


def test_nobody_else_sends_you_test_pages(client, alice):
    client.force_login(UserFactory(username="mallory", role="responder"))
    assert client.post(f"{URL}test/").status_code == 403
    assert not Page.objects.exists() and mail.outbox == []
