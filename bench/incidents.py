"""Incident list and detail under load: 10 000 incidents, one incident with 5 000 entries.

Run by hand: `DATABASE_URL=postgres://postgres@127.0.0.1:5432/opsportal REDIS_URL=redis://127.0.0.1:6379/0
.venv/bin/python bench/incidents.py` (works on the SQLite default too). It creates a throwaway
test database, seeds it, and measures each page in-process through the full middleware stack:
queries per request, median and p95 server time, and the ratio to a bare template view measured
in the same run (the machine is shared; only ratios are comparable between runs).
"""

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsportal.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.shortcuts import render  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.urls import include, path  # noqa: E402
from django.utils import timezone  # noqa: E402

from incidents.models import Incident, Service, TimelineEvent  # noqa: E402
from opsportal.markdown import render_markdown  # noqa: E402

INCIDENTS, EVENTS = 10_000, 5_000


def bare(request):
    return render(request, "bench_bare.html", {"title": "bare"})


urlpatterns = [path("bench/bare/", bare), path("", include("opsportal.urls"))]


def seed():
    user = get_user_model().objects.create_superuser("bench", password="bench")
    services = [Service.objects.create(name=f"Service {n}", slug=f"service-{n}") for n in range(5)]
    now = timezone.now()
    statuses = ["triggered", "acknowledged", "investigating", "mitigated", "resolved", "closed"]
    Incident.objects.bulk_create(
        [
            Incident(
                title=f"Incident {n}",
                severity=f"SEV{n % 4 + 1}",
                status=statuses[n % 6],
                detected_at=now,
                started_at=now,
                commander=user,
            )
            for n in range(INCIDENTS)
        ],
        batch_size=2000,
    )
    through = Incident.services.through
    through.objects.bulk_create(
        [
            through(incident_id=pk, service_id=services[pk % 5].pk)
            for pk in Incident.objects.values_list("pk", flat=True)
        ],
        batch_size=5000,
    )
    big = Incident.objects.order_by("-id").first()
    body = "Checked `pg_stat_activity`: **97** active connections, see [dashboard](https://grafana.example/d/x)"
    html = render_markdown(body)
    TimelineEvent.objects.bulk_create(
        [
            TimelineEvent(incident=big, body=f"{body} #{n}", body_html=html, author=user, occurred_at=now, kind="note")
            for n in range(EVENTS)
        ],
        batch_size=2000,
    )
    return user, big


def measure(client, url, runs):
    timings, queries = [], []
    client.get(url, secure=True)  # warm caches and template loaders (production mode redirects http)
    for _ in range(runs):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url, secure=True)
            timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
        queries.append(len(captured.captured_queries))
    timings.sort()
    return {
        "median": statistics.median(timings),
        "p95": timings[max(0, int(len(timings) * 0.95) - 1)],
        "queries": max(queries),
        "bytes": len(response.content),
    }


def main():
    Path(__file__).with_name("templates").mkdir(exist_ok=True)
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        with override_settings(
            ROOT_URLCONF=__name__,
            ALLOWED_HOSTS=["testserver"],
            TEMPLATES=[
                {
                    **django.conf.settings.TEMPLATES[0],
                    "DIRS": [Path(__file__).with_name("templates"), *django.conf.settings.TEMPLATES[0]["DIRS"]],
                }
            ],
        ):
            started = time.perf_counter()
            user, big = seed()
            print(
                f"seeded {INCIDENTS} incidents and {EVENTS} entries on {connection.vendor} "
                f"in {time.perf_counter() - started:.1f}s"
            )
            middle = TimelineEvent.objects.filter(incident=big).order_by("id")[EVENTS // 2].pk
            client = Client()
            client.force_login(user)
            cases = [
                ("bare template view (baseline)", "/bench/bare/", 60),
                ("portal incident list", "/incidents/", 60),
                ("portal incident list, filtered", "/incidents/?status=triggered&severity=SEV1&search=Incident", 60),
                ("API incident list", "/api/incidents/", 60),
                ("portal incident detail (5 000 entries)", f"/incidents/{big.pk}/", 40),
                ("portal older entries (one window)", f"/incidents/{big.pk}/timeline/earlier/?before={middle}", 40),
                ("API incident detail", f"/api/incidents/{big.pk}/", 60),
                ("API timeline page", f"/api/incidents/{big.pk}/timeline/", 60),
            ]
            results = [(name, url, measure(client, url, runs)) for name, url, runs in cases]
            base = results[0][2]["median"]
            print(f"\n{'request':42} {'queries':>7} {'median ms':>10} {'p95 ms':>8} {'x bare':>8} {'KiB':>7}")
            for name, _url, r in results:
                print(
                    f"{name:42} {r['queries']:>7} {r['median']:>10.2f} {r['p95']:>8.2f} "
                    f"{r['median'] / base:>8.1f} {r['bytes'] / 1024:>7.0f}"
                )
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
