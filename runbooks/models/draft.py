"""Drafts of a runbook's next version, opened from a review's `runbook` action item."""

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q

from incidents.choices import ActionItemKind, ActionItemStatus
from opsportal.errors import Conflict, DomainError
from runbooks.models.runbook import Runbook, RunbookVersion

# The line a draft opens with; publishing refuses while it is still there, so the change asked
# for in the review is made (or the line deliberately removed) before the version goes out.
TODO_MARKER = "> TODO from the review"
MAX_SOURCE = 200_000


class DraftState(models.TextChoices):
    OPEN = "open", "Open"
    PUBLISHED = "published", "Published"
    DISCARDED = "discarded", "Discarded"


class RunbookDraft(models.Model):
    runbook = models.ForeignKey(Runbook, on_delete=models.CASCADE, related_name="drafts")
    base_version = models.ForeignKey(RunbookVersion, on_delete=models.PROTECT, related_name="+")
    action_item = models.ForeignKey(
        "incidents.ActionItem", null=True, blank=True, on_delete=models.SET_NULL, related_name="runbook_drafts"
    )
    note = models.CharField(max_length=500, help_text="What the review asks to change.")
    source = models.TextField(help_text="The runbook's markdown, as it will be published.")
    state = models.CharField(max_length=10, choices=DraftState.choices, default=DraftState.OPEN)
    published_version = models.ForeignKey(
        RunbookVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # One open draft per (action item, runbook): opening it again returns the same draft.
            models.UniqueConstraint(
                fields=["action_item", "runbook"], condition=Q(state="open"), name="draft_open_per_item_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"Draft of {self.runbook} (from v{self.base_version.number})"

    @classmethod
    def open_for(cls, action_item, runbook: Runbook, *, by) -> "RunbookDraft":
        """A draft of `runbook`'s next version, prefilled with the action item as a note of what to change."""
        if action_item.kind != ActionItemKind.RUNBOOK:
            raise DomainError("Only a runbook action item opens a runbook draft.")
        incident = action_item.review.incident
        if not runbook.runs.filter(incident=incident).exists():
            raise DomainError(f"{runbook.title} was not run for {incident.reference}; pick a runbook used in it.")
        if runbook.current_version is None:
            raise DomainError("This runbook has no version to start from.")
        with transaction.atomic():
            existing = cls.objects.select_for_update().filter(
                action_item=action_item, runbook=runbook, state=DraftState.OPEN
            )
            if draft := existing.first():
                return draft
            note = f"{action_item.title} (review of {incident.reference}, action item #{action_item.pk})"
            base = runbook.current_version
            lines = base.source.splitlines() or [f"## {runbook.title}"]
            # The note goes right under the runbook's heading, where the editor sees it first.
            source = "\n".join(
                [lines[0], "", f"{TODO_MARKER} of {incident.reference}: {action_item.title}", *lines[1:]]
            )
            return cls.objects.create(
                runbook=runbook, base_version=base, action_item=action_item, note=note[:500], source=source,
                created_by=by,
            )  # fmt: skip

    def _locked(self) -> "RunbookDraft":
        locked = type(self).objects.select_for_update().get(pk=self.pk)
        if locked.state != DraftState.OPEN:
            raise Conflict(f"This draft is already {locked.get_state_display().lower()}.")
        return locked

    def save_source(self, *, by, source: str) -> "RunbookDraft":
        if len(source) > MAX_SOURCE:
            raise DomainError(f"The runbook is longer than {MAX_SOURCE} characters.")
        if not source.strip():
            raise DomainError("The runbook cannot be empty.")
        with transaction.atomic():
            locked = self._locked()
            locked.source = source
            locked.save(update_fields=["source", "updated_at"])
        self.refresh_from_db()
        return self

    def publish(self, *, by) -> RunbookVersion:
        """Parse the markdown as this runbook and store it as its next version; closes the action item."""
        from runbooks.importer.structure import parse_document

        with transaction.atomic():
            locked = self._locked()
            if TODO_MARKER in locked.source:
                raise DomainError(
                    "The draft still has the review's TODO line: make the change it asks for and remove the line."
                )
            parsed = parse_document(f"# {locked.runbook.title}\n\n{locked.source}", key=f"draft-{locked.pk}")
            if len(parsed.runbooks) != 1:
                count = len(parsed.runbooks)
                raise DomainError(f"The draft must describe exactly one runbook under one heading; it has {count}.")
            spec = parsed.runbooks[0]
            current = locked.runbook.current_version
            spec.slug = locked.runbook.slug
            spec.owner, spec.services = spec.owner or current.owner, spec.services or list(current.services)
            spec.alert_names = spec.alert_names or list(current.alert_names)
            version = locked.runbook.revise(spec, by=by, note=locked.note[:200])
            if version is None:
                raise DomainError("The draft is the same as the current version: nothing to publish.")
            locked.state, locked.published_version = DraftState.PUBLISHED, version
            locked.save(update_fields=["state", "published_version", "updated_at"])
            item = locked.action_item
            if item is not None and item.status == ActionItemStatus.OPEN:
                item.change(by=by, status=ActionItemStatus.DONE)
        self.refresh_from_db()
        return version

    def discard(self, *, by) -> "RunbookDraft":
        with transaction.atomic():
            locked = self._locked()
            locked.state = DraftState.DISCARDED
            locked.save(update_fields=["state", "updated_at"])
        self.refresh_from_db()
        return self
