"""Importing runbook documents: decode and check the file, parse it, store what changed, report.

A document is identified by its file name: importing the same file again revises its runbooks,
and a runbook gets a new version only when its content differs from the current one.
"""

import hashlib
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import PurePath

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from opsportal.errors import DomainError
from runbooks.choices import Safety, StepKind
from runbooks.importer.structure import Findings, parse_document
from runbooks.models import Runbook, RunbookDocument
from runbooks.models.runbook import rendered_sections
from runbooks.specs import RunbookSpec, validate

MAX_RUNBOOKS_PER_DOCUMENT = 300


class ImportRefused(DomainError):
    """The file cannot be imported; nothing was written."""


@dataclass
class RunbookReport:
    slug: str
    title: str
    status: str  # created, updated, unchanged
    version: int
    steps: int
    automated: Counter
    dangerous: int
    alerts: dict[str, str] = field(default_factory=dict)  # alert name -> where it was found
    sections: list[str] = field(default_factory=list)
    by_safety: dict[str, int] = field(default_factory=dict)  # "automated read_only" -> steps
    unclassified: list[str] = field(default_factory=list)

    @property
    def automated_total(self) -> int:
        return sum(self.automated.values())

    @property
    def alerts_text(self) -> str:
        return ", ".join(f"{name} ({source})" for name, source in self.alerts.items()) or "none found"

    @property
    def steps_text(self) -> str:
        return ", ".join(f"{key} {n}" for key, n in sorted(self.by_safety.items())) or "none"

    def as_json(self) -> dict:
        return {
            "slug": self.slug,
            "title": self.title,
            "status": self.status,
            "version": self.version,
            "steps": self.steps,
            "automated": dict(self.automated),
            "dangerous": self.dangerous,
            "alert_names": [{"name": name, "found_in": source} for name, source in self.alerts.items()],
            "sections": self.sections,
            "steps_by_kind_and_safety": self.by_safety,
            "unclassified_commands": self.unclassified,
        }


@dataclass
class DocumentReport:
    name: str
    key: str
    title: str
    shape: str = "collection"
    runbooks: list[RunbookReport] = field(default_factory=list)
    document_sections: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return sum(r.steps for r in self.runbooks)

    @property
    def automated(self) -> Counter:
        return sum((r.automated for r in self.runbooks), Counter())

    @property
    def dangerous(self) -> int:
        return sum(r.dangerous for r in self.runbooks)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.runbooks)

    @property
    def automated_items(self) -> list[tuple[str, int]]:
        return sorted(self.automated.items())

    @property
    def created_count(self) -> int:
        return self.count("created")

    @property
    def updated_count(self) -> int:
        return self.count("updated")

    @property
    def unchanged_count(self) -> int:
        return self.count("unchanged")

    def lines(self) -> list[str]:
        automated = ", ".join(f"{name} {n}" for name, n in sorted(self.automated.items())) or "none"
        lines = [
            f"{self.name}: {self.title} ({self.shape})",
            f"  runbooks: {len(self.runbooks)} ({self.count('created')} created, {self.count('updated')} updated, "
            f"{self.count('unchanged')} unchanged)",
            f"  steps: {self.steps}; automated: {automated}; dangerous: {self.dangerous}",
            f"  document sections: {', '.join(self.document_sections) or 'none'}",
        ]
        for r in self.runbooks:
            lines += [
                f"    {r.status:9} v{r.version:<3} {r.title} ({r.steps} steps, {sum(r.automated.values())} automated, "
                f"{r.dangerous} dangerous)",
                f"        alerts: {r.alerts_text}",
                f"        sections: {', '.join(r.sections) or 'none'}",
                f"        steps: {r.steps_text}",
            ]
            lines += [f"        unclassified: {' '.join(c.split())[:200]}" for c in r.unclassified]
        lines += [f"  no longer in the document (left as they are): {', '.join(self.stale)}"] if self.stale else []
        lines += [f"  note: {w}" for w in self.warnings]
        return lines


def document_key(name: str) -> str:
    return slugify(PurePath(name or "document").stem)[:120] or "document"


def decode(data: bytes | str, name: str) -> str:
    limit = settings.RUNBOOK_IMPORT_MAX_BYTES
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > limit:
        raise ImportRefused(
            f"{name} is {len(raw) / 1048576:.1f} MB; runbook documents may be at most {limit / 1048576:.1f} MB."
        )
    if b"\x00" in raw:
        raise ImportRefused(f"{name} looks like a binary file, not a markdown document.")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportRefused(f"{name} is not UTF-8 text (invalid byte at position {exc.start}).") from None
    control = sum(1 for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r")
    if control > max(10, len(text) // 100):
        raise ImportRefused(f"{name} looks like a binary file, not a markdown document.")
    if not text.strip():
        raise ImportRefused(f"{name} is empty.")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def import_document(
    data: bytes | str, *, name: str, by=None, services: list[str] | None = None, owner: str = ""
) -> DocumentReport:
    """Imports one markdown document. `services` (slugs) and `owner` apply to all its runbooks;
    left out, each runbook keeps the ones it has."""
    text = decode(data, name)
    key = document_key(name)
    try:
        parsed = parse_document(text, key)
    except ValueError as exc:
        raise ImportRefused(f"{name}: {exc}") from None
    if len(parsed.runbooks) > MAX_RUNBOOKS_PER_DOCUMENT:
        raise ImportRefused(
            f"{name} has {len(parsed.runbooks)} runbooks; at most {MAX_RUNBOOKS_PER_DOCUMENT} per file."
        )
    report = DocumentReport(name=name, key=key, title=parsed.title, shape=parsed.shape, warnings=list(parsed.warnings))
    with transaction.atomic():
        document = RunbookDocument.objects.select_for_update().filter(key=key).first() or RunbookDocument(key=key)
        document.title, document.source = parsed.title, text
        document.sha256 = hashlib.sha256(text.encode()).hexdigest()
        document.sections = rendered_sections(parsed.sections)
        document.imported_at, document.imported_by = timezone.now(), by
        document.save()
        existing = {r.slug: r for r in Runbook.objects.filter(slug__in=[s.slug for s in parsed.runbooks])}
        for spec in parsed.runbooks:
            runbook = existing.get(spec.slug)
            if runbook is not None and runbook.document_id not in (None, document.pk):
                raise ImportRefused(f"{name}: the slug {spec.slug} belongs to a runbook of another document.")
            spec.services = list(services) if services is not None else _current_services(runbook)
            spec.owner = owner or (runbook.owner if runbook else "")
            runbook, status = _store(spec, runbook, document=document, name=name, by=by)
            report.runbooks.append(_runbook_report(spec, runbook, status, parsed.findings.get(spec.slug) or Findings()))
        report.document_sections = [s.title for s in parsed.sections]
        report.stale = list(
            document.runbooks.exclude(slug__in=[r.slug for r in report.runbooks]).values_list("title", flat=True)
        )
    return report


def _store(spec: RunbookSpec, runbook: Runbook | None, *, document, name: str, by) -> tuple[Runbook, str]:
    """Creates the runbook or revises it (keeping portal edits the document did not change)."""
    try:
        validate(spec)
        imported = spec.content()
        if runbook is None:
            runbook, status = Runbook.create(spec, by=by, document=document, note=f"Imported from {name}"), "created"
        else:
            changed = runbook.revise(keep_portal_edits(spec, runbook), by=by, note=f"Imported from {name}")
            status = "updated" if changed else "unchanged"
    except ValidationError as exc:
        raise ImportRefused(f"{name}: runbook {spec.title!r}: {'; '.join(exc.messages)}") from None
    runbook.imported = imported
    runbook.save(update_fields=["imported"])
    return runbook, status


def _runbook_report(spec: RunbookSpec, runbook: Runbook, status: str, found: Findings) -> RunbookReport:
    return RunbookReport(
        slug=runbook.slug,
        title=runbook.title,
        status=status,
        version=runbook.version,
        steps=len(spec.steps),
        automated=Counter(s.action for s in spec.steps if s.kind == StepKind.AUTOMATED),
        dangerous=sum(s.safety == Safety.DANGEROUS for s in spec.steps),
        alerts={a: found.alert_sources.get(a, "portal") for a in runbook.alert_names},
        sections=[s.title for s in spec.sections],
        by_safety=dict(Counter(f"{s.kind} {s.safety}" for s in spec.steps)),
        unclassified=found.unclassified,
    )


def keep_portal_edits(spec: RunbookSpec, runbook: Runbook) -> RunbookSpec:
    """Alert names, severity and each step's safety and target service as edited in the portal
    since the last import stay, unless the document changed that very value since then."""
    base, current = runbook.imported, runbook.current_version
    if not base or current is None:
        return spec
    if list(current.alert_names) != base.get("alert_names") and spec.alert_names == base.get("alert_names"):
        spec.alert_names = list(current.alert_names)
    if current.severity != base.get("severity") and spec.severity == base.get("severity"):
        spec.severity = current.severity
    before = {(s.get("title"), s.get("command")): s for s in base.get("steps", [])}
    now = {(s.title, s.command): s for s in current.steps.select_related("target_service")}
    for step in spec.steps:
        was, edited = before.get((step.title, step.command)), now.get((step.title, step.command))
        if was is None or edited is None:
            continue
        if edited.safety != was.get("safety") and step.safety == was.get("safety"):
            step.safety = edited.safety
        target = edited.target_service.slug if edited.target_service_id else ""
        if target != was.get("target_service", "") and step.target_service == was.get("target_service", ""):
            step.target_service = target
    return spec


def _current_services(runbook) -> list[str]:
    return [s.slug for s in runbook.services.all()] if runbook is not None else []
