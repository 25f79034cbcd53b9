"""A small demo data set: services from the seed runbooks and a few incidents. Idempotent."""

from datetime import timedelta
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from incidents.choices import EventKind, Severity, Status
from incidents.models import Incident, Service, TimelineEvent
from runbooks.importer import import_document

SERVICES = [
    ("Cosmetica API", "cosmetica-api", "Sales, stock and website leads (Django).", "Backend", True),
    ("Express API", "express-api", "REST API on port 3000 with Postgres and Redis.", "Platform", True),
    ("Balcon", "balcon", "Jobs, webhooks and cache tags.", "Platform", False),
    ("AutoMechanica", "automechanica", "Agent workflows and task queue.", "Agents", False),
    ("Postgres", "postgres", "Primary PostgreSQL 15 cluster.", "DBA", False),
    ("Redis", "redis", "Cache, rate limits and broker.", "Platform", False),
]

DEMO_USERS = [("alice", "responder"), ("bob", "responder"), ("victor", "viewer")]

# The seed runbooks shipped in runbooks/seeds/, and the demo service each one answers for.
SEED_RUNBOOKS = {
    "cosmetica-critical-alert-runbooks.md": ["cosmetica-api"],
    "express-api-ops-runbook.md": ["express-api"],
    "balcon-ops-runbooks.md": ["balcon"],
    "automechanica-incident-runbooks.md": ["automechanica"],
    "queue-cache-db-runbooks.md": ["postgres", "redis"],
}
SEEDS_DIR = Path(__file__).resolve().parents[3] / "runbooks" / "seeds"


class Command(BaseCommand):
    help = "Load demo services, users, the seed runbooks and incidents (safe to run again: nothing is duplicated)."

    @transaction.atomic
    def handle(self, *args, **options):
        for name, slug, description, team, public in SERVICES:
            Service.objects.update_or_create(
                slug=slug, defaults={"name": name, "description": description, "owner_team": team, "public": public}
            )
        User = get_user_model()
        users = {}
        for username, role in DEMO_USERS:
            user, created = User.objects.get_or_create(username=username)
            if created:
                user.set_unusable_password()
                user.save()
            user.groups.add(Group.objects.get_or_create(name=role)[0])
            users[username] = user

        for name, services in SEED_RUNBOOKS.items():
            # Re-importing an unchanged document makes no new version, so this stays idempotent.
            report = import_document((SEEDS_DIR / name).read_bytes(), name=name, services=services)
            self.stdout.write(f"Runbooks from {name}: {len(report.runbooks)}")

        if Incident.objects.filter(title__startswith="[demo]").exists():
            self.stdout.write("Demo incidents already loaded.")
            return
        now = timezone.now()
        api = Service.objects.get(slug="cosmetica-api")
        db = Service.objects.get(slug="postgres")
        first = Incident.declare(
            by=users["alice"],
            title="[demo] APIHigh5xxRate: 3% of API requests failing",
            summary="5xx spike on /api/sales/{id}/transition/ after the 14:00 deploy.",
            severity=Severity.SEV2,
            services=[api, db],
            commander=users["alice"],
            scribe=users["bob"],
            detected_at=now - timedelta(hours=2),
            started_at=now - timedelta(hours=2, minutes=10),
        )
        TimelineEvent.add_note(
            first,
            by=users["bob"],
            body="Top failing endpoint: `/api/sales/123/transition/` (500). Checking `pg_stat_activity`.",
            occurred_at=now - timedelta(hours=1, minutes=50),
        )
        first.transition_to(Status.ACKNOWLEDGED, by=users["alice"])
        first.transition_to(Status.INVESTIGATING, by=users["alice"], note="Connection pool looks exhausted.")
        TimelineEvent.add_note(
            first,
            by=users["alice"],
            kind=EventKind.ACTION,
            body="Rolling restart of gunicorn workers (`kill -HUP`).",
            occurred_at=now - timedelta(hours=1, minutes=20),
            pinned=True,
        )
        Incident.declare(
            by=users["bob"],
            title="[demo] Redis memory at 92%",
            severity=Severity.SEV3,
            services=[Service.objects.get(slug="redis")],
        )
        self.stdout.write(self.style.SUCCESS("Loaded demo services, users (alice, bob, victor) and incidents."))
