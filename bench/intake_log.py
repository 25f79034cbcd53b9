"""What the delivery log costs the intake: a refused or duplicate POST with its IntakeEvent row
(insert + prune to INTAKE_LOG_KEEP) against the same POST with logging switched off.

Run by hand (PostgreSQL for figures that mean something):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/opsportal REDIS_URL=redis://127.0.0.1:6379/0 \
        .venv/bin/python bench/intake_log.py

It creates a throwaway database (`<name>_bench_intake_log`), posts ROUNDS x BATCH bodies through Django's test client,
alternating batches with and without the log so a shared machine's load hits both alike, and
prints the median per-request time of each and their ratio. The log is already at its cap when
timing starts, so every logged request also prunes a row (the steady state of a hammering sender).
"""

import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsportal.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdef0123456789")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")  # the test client speaks plain http
ROUNDS, BATCH = int(os.environ.get("BENCH_ROUNDS", "10")), int(os.environ.get("BENCH_BATCH", "30"))


def main() -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment

    from incidents.alerting import receive
    from incidents.models import IntakeEvent, Integration
    from opsportal.celery import app

    setup_test_environment()
    app.conf.task_always_eager = True
    # Its own database, never the test suite's (which may be running).
    connection.settings_dict["TEST"]["NAME"] = f"{connection.settings_dict['NAME']}_bench_intake_log"
    name = connection.creation.create_test_db(verbosity=0, keepdb=False)
    try:
        _, token = Integration.create(name="bench", kind="alertmanager")
        client, url = Client(), f"/api/integrations/alertmanager/{token}/"
        payload = json.dumps(_payload())
        client.post(url, payload, content_type="application/json")  # stored once; then duplicates
        bodies = {"refused": (lambda i: f"not json {i}", 400), "duplicate": (lambda i: payload, 202)}
        for outcome, (body, expected) in bodies.items():
            for i in range(settings.INTAKE_LOG_KEEP):  # fill the log to its cap: every later row prunes one
                client.post(url, body(i), content_type="application/json")
            times = {"logged": [], "not logged": []}
            real_log = receive._log
            for r in range(ROUNDS):
                for mode in ("logged", "not logged"):
                    receive._log = real_log if mode == "logged" else (lambda *a, **k: None)
                    for i in range(BATCH):
                        start = time.perf_counter()
                        response = client.post(url, body(r * BATCH + i), content_type="application/json")
                        times[mode].append(time.perf_counter() - start)
                        assert response.status_code == expected, response.content
            receive._log = real_log
            logged, bare = (statistics.median(times[m]) * 1000 for m in ("logged", "not logged"))
            kept = IntakeEvent.objects.filter(outcome=outcome).count()
            print(
                f"{outcome:9}: {logged:.2f} ms logged vs {bare:.2f} ms not logged per request "
                f"(ratio {logged / bare:.2f}); rows kept {kept} (cap {settings.INTAKE_LOG_KEEP})"
            )
    finally:
        connection.creation.destroy_test_db(name, verbosity=0)


def _payload() -> dict:
    alert = {
        "status": "firing",
        "labels": {"alertname": "BenchAlert", "severity": "warning"},
        "annotations": {"summary": "bench"},
        "startsAt": "2026-01-01T00:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": "bench0001",
    }
    return {
        "version": "4",
        "groupKey": '{}:{alertname="BenchAlert"}',
        "status": "firing",
        "receiver": "bench",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [alert],
    }


if __name__ == "__main__":
    main()
