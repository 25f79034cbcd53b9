"""A small demo data set: services from the seed runbooks, a few incidents and an on-call rotation
that pages. Idempotent."""

import os
from datetime import time, timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from incidents import oncall
from incidents.choices import EscalationLevel, EventKind, Severity, Status
from incidents.models import (
    EscalationContact,
    Incident,
    LayerParticipant,
    Schedule,
    ScheduleLayer,
    Service,
    TimelineEvent,
)
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
DEMO_SCHEDULE = "Primary"
DEMO_DOMAIN = "example.com"  # reserved for examples (RFC 2606): demo mail goes nowhere real

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

        self._on_call(users)
        self._incidents(users)

    def _incidents(self, users):
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

    def _on_call(self, users):
        """A weekly rotation of the admin, alice and bob in the schedule "Primary", L1's contact, so
        the first alert pages whoever is on call (mail goes to the console backend by default).
        Made before the demo incidents, so they are paged too rather than warned about."""
        if Schedule.objects.filter(name=DEMO_SCHEDULE).exists():
            self.stdout.write(f"Demo schedule {DEMO_SCHEDULE!r} already loaded.")
            return
        admin = get_user_model().objects.filter(username=os.environ.get("OPSPORTAL_ADMIN_USER", "admin")).first()
        people = [u for u in (admin, users["alice"], users["bob"]) if u is not None]
        for person in people:
            if not person.email:  # a page goes to the person's address; an empty one pages nobody
                person.email = f"{person.get_username()}@{DEMO_DOMAIN}"
                person.save(update_fields=["email"])
        schedule = Schedule.objects.create(
            name=DEMO_SCHEDULE,
            time_zone=settings.TIME_ZONE,
            description="Demo: a weekly rotation, handing off on Mondays at 09:00.",
        )
        today = timezone.now().astimezone(schedule.zone).date()
        layer = ScheduleLayer.objects.create(
            schedule=schedule,
            name="Weekly",
            shift_unit="weeks",
            shift_length=1,
            rotation_start=today - timedelta(days=today.weekday() + 7 * len(people)),
            handoff_time=time(9),
        )
        # The first of the list (the admin, who can sign in) is on call this week.
        k = oncall.shift_index(layer, schedule.zone, timezone.now())
        order = people[-(k % len(people)) :] + people[: -(k % len(people))] if k % len(people) else people
        LayerParticipant.objects.bulk_create(
            LayerParticipant(layer=layer, user=user, position=i) for i, user in enumerate(order)
        )
        EscalationContact.objects.get_or_create(
            level=EscalationLevel.L1, schedule=schedule, defaults={"note": "Demo: whoever is on call"}
        )
        names = ", ".join(u.get_username() for u in people)
        on_call = people[0].get_username()
        self.stdout.write(
            self.style.SUCCESS(f"Loaded schedule {DEMO_SCHEDULE!r} ({names}, weekly; {on_call} on call now), L1.")
        )
