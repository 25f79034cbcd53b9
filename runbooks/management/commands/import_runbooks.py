"""python manage.py import_runbooks PATH... — import markdown runbook documents and print a report."""

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from runbooks.importer import ImportRefused, import_document


class Command(BaseCommand):
    help = (
        "Import markdown runbook documents (files or directories of *.md). Importing a file again makes a new "
        "version only of the runbooks whose content changed."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", help="Markdown files, or directories holding *.md files.")
        parser.add_argument(
            "--service", action="append", dest="services", metavar="SLUG", help="Attach every runbook to this service."
        )
        parser.add_argument("--owner", default="", help="Team that owns the runbooks.")
        parser.add_argument("--user", help="Username recorded as the importer.")

    def handle(self, *args, paths, services, owner, user, **options):
        by = None
        if user:
            by = get_user_model().objects.filter(username=user).first()
            if by is None:
                raise CommandError(f"No user named {user!r}.")
        files = []
        for raw in paths:
            path = Path(raw)
            if path.is_dir():
                files += sorted(path.glob("*.md"))
            elif path.is_file():
                files.append(path)
            else:
                raise CommandError(f"{raw}: no such file or directory.")
        if not files:
            raise CommandError("No markdown files found.")
        failed = 0
        for path in files:
            try:
                report = import_document(path.read_bytes(), name=path.name, by=by, services=services, owner=owner)
            except ImportRefused as exc:
                failed += 1
                self.stderr.write(self.style.ERROR(f"{path}: not imported: {exc}"))
                continue
            except OSError as exc:
                failed += 1
                self.stderr.write(self.style.ERROR(f"{path}: cannot be read: {exc.strerror}"))
                continue
            for line in report.lines():
                self.stdout.write(line)
        if failed:
            raise CommandError(f"{failed} of {len(files)} files were not imported.")
