"""Create an alert integration and print its URL with the token, once: setup can be scripted.

python manage.py create_integration prod-alertmanager --kind alertmanager --service cosmetica-api
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from incidents.alerting import sources
from incidents.choices import Severity
from incidents.models import Integration, Service


class Command(BaseCommand):
    help = "Create an alert integration of a registered source and print its webhook URL (the token is shown once)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--kind", required=True, choices=sources.slugs())
        parser.add_argument("--service", help="Slug of the default service for alerts without a service/job label.")
        parser.add_argument("--default-severity", choices=Severity.values, default=Severity.SEV3)
        parser.add_argument("--no-first-look", action="store_true", help="Do not start runbook first looks.")
        parser.add_argument("--base-url", help="The portal's public URL (default: PORTAL_BASE_URL).")

    def handle(self, *args, name, kind, service, default_severity, no_first_look, base_url, **options):
        default_service = None
        if service:
            default_service = Service.objects.filter(slug=service).first()
            if default_service is None:
                known = ", ".join(Service.objects.values_list("slug", flat=True)) or "none yet"
                raise CommandError(f"No service with slug {service!r} (known: {known}).")
        if Integration.objects.filter(name=name).exists():
            raise CommandError(f"An integration named {name!r} exists; rotate its token in the admin or portal.")
        try:
            integration, token = Integration.create(
                name=name,
                kind=kind,
                default_service=default_service,
                default_severity=default_severity,
                run_first_look=not no_first_look,
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stderr.write(f"Created {integration}. The URL below holds its token and is shown only once.")
        self.stdout.write(integration.url(token, base_url=base_url))
