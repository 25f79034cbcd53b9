"""Worker time and queries to apply one alert delivery, by size: what a storm costs the worker.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/opsportal .venv/bin/python bench/alert_apply.py

Creates a throwaway database (`<name>_bench_apply`), stores Alertmanager notifications of 10 and
of 1 000 alerts (each a new group, so each opens an incident), and applies each in-process with
`apply_delivery` as the worker does, three ways: new alerts (opens the incident), the same alerts
again with a changed annotation (updates), and all of them resolved. Prints the median wall time
and the queries per delivery. The machine is shared: compare runs made one after the other.
"""

import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SIZES = {10: 15, 1000: 3}  # alerts per delivery: deliveries measured


def sql(url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(urlunsplit(urlsplit(url)._replace(path="/postgres")), autocommit=True) as conn:
        conn.execute(statement)


def payload(group: str, count: int, *, status: str = "firing", summary: str = "Bench alert") -> dict:
    alerts = [
        {
            "status": status,
            "labels": {"alertname": f"Bench{group}", "severity": "warning", "instance": f"host-{n}", "job": "bench"},
            "annotations": {"summary": summary, "description": "synthetic"},
            "startsAt": "2026-01-01T10:00:00Z",
            "endsAt": "2026-01-01T10:30:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example:9090/graph",
            "fingerprint": f"{group}-{n:05d}",
        }
        for n in range(count)
    ]
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="Bench{group}"}}',
        "status": status,
        "receiver": "bench",
        "groupLabels": {"alertname": f"Bench{group}"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": alerts,
    }


def measure(integration, raw: dict) -> tuple[float, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from incidents.alerting import intake
    from incidents.models import AlertDelivery

    delivery = AlertDelivery.objects.create(
        integration=integration,
        payload=raw,
        payload_hash=intake.payload_hash(raw),
        group_key=raw["groupKey"],
        alert_count=len(raw["alerts"]),
    )
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        intake.apply_delivery(delivery.pk)
        elapsed = time.perf_counter() - started
    return elapsed * 1000, len(queries)


def main() -> None:
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith("postgres"):
        raise SystemExit("Set DATABASE_URL (PostgreSQL).")
    name = urlsplit(database_url).path.lstrip("/") + "_bench_apply"
    sql(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    sql(database_url, f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsportal.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    from incidents.alerting import first_look
    from incidents.models import Integration

    try:
        call_command("migrate", verbosity=0)
        first_look.start_first_look = lambda *args: None  # the worker's own work only
        integration, _ = Integration.create(name="bench", kind="alertmanager")
        print(f"{'alerts':>7} {'delivery':>9} {'median ms':>10} {'queries':>8}")
        for size, rounds in SIZES.items():
            figures = {"new": [], "updated": [], "resolved": []}
            for n in range(rounds):
                group = f"{size}x{n}"
                figures["new"].append(measure(integration, payload(group, size)))
                figures["updated"].append(measure(integration, payload(group, size, summary="changed")))
                figures["resolved"].append(measure(integration, payload(group, size, status="resolved")))
            for kind, runs in figures.items():
                ms = statistics.median(r[0] for r in runs)
                print(f"{size:>7} {kind:>9} {ms:>10.1f} {max(r[1] for r in runs):>8}")
    finally:
        from django.db import connections

        connections.close_all()
        sql(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
