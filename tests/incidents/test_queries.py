"""List and detail keep a constant number of queries however many incidents and entries exist."""

import pytest

from incidents.models import TimelineEvent
from tests.factories import IncidentFactory, ServiceFactory

pytestmark = pytest.mark.django_db


def make_incidents(count, responder, services):
    for n in range(count):
        incident = IncidentFactory(title=f"i{n}", services=services, commander=responder, scribe=responder)
        TimelineEvent.add_note(incident, by=responder, body=f"note {n}")


def query_count(django_assert_max_num_queries, call, limit):
    with django_assert_max_num_queries(limit) as captured:
        response = call()
    assert response.status_code == 200
    return len(captured.captured_queries)


@pytest.mark.parametrize(
    "url",
    ["/api/incidents/", "/incidents/"],
)
def test_list_queries_do_not_grow_with_incidents(client, api, responder, django_assert_max_num_queries, url):
    services = [ServiceFactory(name="A", slug="a"), ServiceFactory(name="B", slug="b")]
    client.force_login(responder)
    http = api if url.startswith("/api") else client
    make_incidents(3, responder, services)
    http.get(url)  # the session's idle-timeout write comes with the first request after sign-in
    few = query_count(django_assert_max_num_queries, lambda: http.get(url), 12)
    make_incidents(30, responder, services)
    many = query_count(django_assert_max_num_queries, lambda: http.get(url), 12)
    assert many == few


@pytest.mark.parametrize(
    "path",
    [
        "/api/incidents/{pk}/",
        "/api/incidents/{pk}/timeline/",
        "/incidents/{pk}/",
        "/incidents/{pk}/timeline/",
        "/incidents/{pk}/timeline/earlier/?before={last}",
    ],
)
def test_detail_queries_do_not_grow_with_entries(client, api, responder, django_assert_max_num_queries, path):
    incident = IncidentFactory(services=[ServiceFactory(name="A", slug="a")], commander=responder)
    client.force_login(responder)
    http = api if path.startswith("/api") else client
    for n in range(3):
        TimelineEvent.add_note(incident, by=responder, body=f"note {n}").edit(by=responder, version=1, body="x")
    last = TimelineEvent.add_note(incident, by=responder, body="cursor").pk
    url = path.format(pk=incident.pk, last=last)
    http.get(url)  # the session's idle-timeout write comes with the first request after sign-in
    few = query_count(django_assert_max_num_queries, lambda: http.get(url), 15)
    for n in range(40):
        TimelineEvent.add_note(incident, by=responder, body=f"more {n}").soft_delete(by=responder)
        TimelineEvent.add_note(incident, by=responder, body=f"kept {n}", pinned=True)
    many = query_count(django_assert_max_num_queries, lambda: http.get(url), 15)
    assert many == few
