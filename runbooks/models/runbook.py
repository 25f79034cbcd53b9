"""Runbooks and their versions. A version is never changed: an edit or a changed import adds one."""

import re
import unicodedata

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Max, Q

from incidents.choices import Severity
from incidents.models import Service
from opsportal.errors import BadParameters, Conflict
from opsportal.markdown import render_markdown
from runbooks import parameters
from runbooks.actions import ACTIONS
from runbooks.choices import TEMPLATE_KINDS, Safety, SectionKind, StepKind
from runbooks.specs import RunbookSpec, SectionSpec, StepSpec, validate

_WORD = re.compile(r"[^\W\d_][\w]+")


def alert_key(name: str) -> str:
    """How alert names compare: Unicode-normalised and case-folded, so `RéservationÉchouée` written
    either way (composed or not, any case) is one name."""
    return unicodedata.normalize("NFKC", name or "").casefold().strip()[:200]


def rendered_sections(sections: list[SectionSpec]) -> list[dict]:
    return [
        {"title": s.title, "kind": s.kind, "level": s.level, "body": s.body, "body_html": render_markdown(s.body)}
        for s in sections
    ]


class RunbookDocument(models.Model):
    """A markdown file as it was last imported, with the sections that belong to all its runbooks."""

    key = models.SlugField(
        max_length=120, unique=True, help_text="From the file name: re-importing it updates its runbooks."
    )
    title = models.CharField(max_length=200)
    source = models.TextField()
    sha256 = models.CharField(max_length=64)
    sections = models.JSONField(default=list, blank=True)
    imported_at = models.DateTimeField()
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


def answering_like(text: str):
    """Ids of runbooks answering an alert whose name contains `text` (normalised the same way)."""
    return RunbookAlert.objects.filter(key__contains=alert_key(text)).values("runbook_id")


class RunbookQuerySet(models.QuerySet):
    def published(self):
        return self.filter(current_version__isnull=False)

    def for_list(self):
        return self.select_related("document", "current_version").prefetch_related("services")

    def answering(self, alertname: str):
        return self.published().filter(answers__key=alert_key(alertname)).distinct()

    def suggested_for(self, incident, *, limit: int = 8) -> list["Runbook"]:
        """Runbooks answering one of the incident's alerts (or an alert named in its title or summary)
        first, then runbooks of its services."""
        alerts = {alert_key(name) for name in incident.alerts.values_list("alertname", flat=True) if name}
        words = alerts | {alert_key(w) for w in _WORD.findall(f"{incident.title}\n{incident.summary}")}
        by_alert = list(
            self.published().filter(answers__key__in=words).order_by("title").values_list("pk", flat=True).distinct()
        )
        service_ids = [s.pk for s in incident.services.all()]
        by_service = (
            list(self.published().filter(services__in=service_ids).order_by("title").values_list("pk", flat=True))
            if service_ids
            else []
        )
        ordered = list(dict.fromkeys(by_alert + by_service))[:limit]
        found = self.for_list().in_bulk(ordered)
        return [found[pk] for pk in ordered if pk in found]


class Runbook(models.Model):
    slug = models.SlugField(max_length=150, unique=True)
    document = models.ForeignKey(
        RunbookDocument, null=True, blank=True, on_delete=models.SET_NULL, related_name="runbooks"
    )
    # The current version's title and routing fields, kept here so lists and suggestions filter on them.
    title = models.CharField(max_length=200)
    category = models.CharField(max_length=200, blank=True)
    alert_names = models.JSONField(default=list, blank=True)
    severity = models.CharField(max_length=4, choices=Severity.choices, blank=True)
    owner = models.CharField(max_length=120, blank=True)
    services = models.ManyToManyField(Service, blank=True, related_name="runbooks")
    current_version = models.ForeignKey(
        "RunbookVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    imported = models.JSONField(
        default=dict,
        blank=True,
        editable=False,
        help_text="What the last import of its document made of it: a re-import tells the portal's edits from "
        "the document's changes by it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RunbookQuerySet.as_manager()

    class Meta:
        ordering = ["title", "id"]

    def __str__(self) -> str:
        return self.title

    @property
    def version(self) -> int:
        return self.current_version.number if self.current_version_id else 0

    # --- verbs ----------------------------------------------------------------------------

    @classmethod
    def create(cls, spec: RunbookSpec, *, by, document=None, note: str = "") -> "Runbook":
        validate(spec)
        with transaction.atomic():
            if cls.objects.filter(slug=spec.slug).exists():
                raise Conflict(f"A runbook with the slug {spec.slug!r} already exists.", slug=spec.slug)
            runbook = cls.objects.create(slug=spec.slug, title=spec.title, document=document)
            runbook._add_version(spec, by=by, note=note)
        return runbook

    def revise(self, spec: RunbookSpec, *, by, note: str = "") -> "RunbookVersion | None":
        """Stores `spec` as the next version, or returns None when it equals the current version."""
        validate(spec)
        with transaction.atomic():
            locked = (
                type(self).objects.select_for_update(of=("self",)).select_related("current_version").get(pk=self.pk)
            )
            current = locked.current_version
            if current is not None and current.content_hash == spec.content_hash():
                return None
            version = locked._add_version(spec, by=by, note=note)
        self.refresh_from_db()
        return version

    def _add_version(self, spec: RunbookSpec, *, by, note: str) -> "RunbookVersion":
        services = _services(spec.services, "services")
        targets = _services({s.target_service for s in spec.steps if s.target_service}, "target_service")
        number = (self.versions.aggregate(n=Max("number"))["n"] or 0) + 1
        version = RunbookVersion.objects.create(
            runbook=self,
            number=number,
            title=spec.title,
            category=spec.category,
            alert_names=spec.alert_names,
            severity=spec.severity,
            owner=spec.owner,
            services=sorted(s.slug for s in services),
            sections=rendered_sections(spec.sections),
            source=spec.source,
            content_hash=spec.content_hash(),
            note=note[:200],
            created_by=by,
        )
        RunbookStep.objects.bulk_create(
            [_step_row(version, n, step, targets) for n, step in enumerate(spec.steps, start=1)]
        )
        self.title, self.category, self.alert_names = spec.title, spec.category, spec.alert_names
        self.severity, self.owner, self.current_version = spec.severity, spec.owner, version
        self.save()
        self.services.set(services)
        keys = {alert_key(name): name for name in spec.alert_names}
        self.answers.exclude(key__in=keys).delete()
        present = set(self.answers.values_list("key", flat=True))
        RunbookAlert.objects.bulk_create(
            [RunbookAlert(runbook=self, name=name, key=key) for key, name in keys.items() if key not in present]
        )
        return version


class RunbookAlert(models.Model):
    """An alert name the current version of a runbook answers, by its normalised key."""

    runbook = models.ForeignKey(Runbook, on_delete=models.CASCADE, related_name="answers")
    name = models.CharField(max_length=200)
    key = models.CharField(max_length=200)

    class Meta:
        constraints = [
            # A runbook answers an alert once, however its name is written.
            models.UniqueConstraint(fields=["runbook", "key"], name="runbook_alert_key_uniq"),
        ]
        indexes = [
            # The first look and the suggested runbooks: which runbooks answer this alert.
            models.Index(fields=["key"], name="runbook_alert_key_idx"),
        ]

    def __str__(self) -> str:
        return self.name


def _services(slugs, field: str) -> list[Service]:
    slugs = set(slugs)
    found = list(Service.objects.filter(slug__in=slugs))
    missing = slugs - {s.slug for s in found}
    if missing:
        raise ValidationError({field: [f"Unknown service: {', '.join(sorted(missing))}."]})
    return found


def _step_row(version, order: int, step: StepSpec, targets: list[Service]) -> "RunbookStep":
    by_slug = {s.slug: s for s in targets}
    return RunbookStep(
        version=version,
        order=order,
        section=step.section,
        title=step.title,
        instructions=step.instructions,
        instructions_html=render_markdown(step.instructions),
        command=step.command,
        kind=step.kind,
        action=step.action,
        params=step.params,
        safety=step.safety,
        expected=step.expected,
        target_service=by_slug.get(step.target_service),
        timeout_seconds=step.timeout,
        parameters=step.parameters,
    )


class RunbookVersion(models.Model):
    runbook = models.ForeignKey(Runbook, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    category = models.CharField(max_length=200, blank=True)
    alert_names = models.JSONField(default=list, blank=True)
    severity = models.CharField(max_length=4, choices=Severity.choices, blank=True)
    owner = models.CharField(max_length=120, blank=True)
    services = models.JSONField(default=list, blank=True, help_text="Service slugs when this version was made.")
    sections = models.JSONField(default=list, blank=True)
    source = models.TextField(blank=True, help_text="The markdown this version was imported from.")
    content_hash = models.CharField(max_length=64)
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["runbook", "-number"]
        constraints = [
            # Version numbers of a runbook are unique; two concurrent edits cannot both make version N.
            models.UniqueConstraint(fields=["runbook", "number"], name="runbook_version_number_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.title} v{self.number}"

    def template_coverage(self) -> list[tuple[str, bool]]:
        present = {s["kind"] for s in self.sections}
        return [(SectionKind(kind).label, kind in present) for kind in TEMPLATE_KINDS]


class RunbookStep(models.Model):
    version = models.ForeignKey(RunbookVersion, on_delete=models.CASCADE, related_name="steps")
    order = models.PositiveIntegerField()
    section = models.PositiveIntegerField(default=0, help_text="Index of the version's section it belongs to.")
    title = models.CharField(max_length=300)
    instructions = models.TextField(blank=True)
    instructions_html = models.TextField(blank=True, editable=False)
    command = models.TextField(blank=True, help_text="The command or code block from the document.")
    kind = models.CharField(max_length=10, choices=StepKind.choices, default=StepKind.MANUAL)
    action = models.CharField(max_length=40, blank=True)
    params = models.JSONField(default=dict, blank=True)
    safety = models.CharField(max_length=10, choices=Safety.choices, default=Safety.READ_ONLY)
    expected = models.TextField(blank=True)
    target_service = models.ForeignKey(
        Service,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Instead of the run's target.",
    )
    timeout_seconds = models.PositiveIntegerField(null=True, blank=True)
    parameters = models.JSONField(
        default=list,
        blank=True,
        help_text="The run parameters it needs: name, how it is written (written) in which field, context.",
    )

    class Meta:
        ordering = ["version", "order"]
        constraints = [
            # Steps run in this order; one step per position.
            models.UniqueConstraint(fields=["version", "order"], name="runbook_step_order_uniq"),
            models.CheckConstraint(
                condition=Q(kind=StepKind.MANUAL, action="") | Q(kind=StepKind.AUTOMATED) & ~Q(action=""),
                name="runbook_step_action_iff_automated",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.order}. {self.title}"

    @property
    def is_automated(self) -> bool:
        return self.kind == StepKind.AUTOMATED

    @property
    def approval_required(self) -> bool:
        """Dangerous steps need another person's approval; automated changes need a confirmation."""
        return self.safety == Safety.DANGEROUS or (self.is_automated and self.safety == Safety.CHANGE)

    @property
    def timeout(self) -> int:
        return self.timeout_seconds or settings.RUNBOOK_STEP_TIMEOUT

    @property
    def needs(self) -> str | None:
        return ACTIONS[self.action].needs(self.params) if self.is_automated else None

    def refusal(self, target, values: dict | None = None) -> str | None:
        """Why this step cannot run against the run's `target` (its own target service comes first),
        judged on its parameters filled with `values`. A blank still unfilled leaves its URL out of
        the judgement: the worker judges the filled URL before anything is sent."""
        if not self.is_automated:
            return None
        service = self.target_service or target
        params = self.params
        if self.parameters:
            try:
                params = parameters.fill(
                    self.params, self.parameters, values or {}, base_url=bool(service and service.base_url)
                )
            except BadParameters:
                params = {k: v for k, v in self.params.items() if k != "url"}
        return ACTIONS[self.action].refusal(params, service)

    @property
    def parameter_names(self) -> list[str]:
        return parameters.names(self.parameters)

    def describe(self) -> str:
        return f"{self.action} {ACTIONS[self.action].describe(self.params)}" if self.is_automated else "manual"
