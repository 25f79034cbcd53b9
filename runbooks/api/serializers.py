from django.conf import settings
from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from incidents.api.serializers import UserField
from incidents.models import Incident, Service
from runbooks.choices import Safety, SectionKind, StepKind
from runbooks.models import Runbook, RunbookRun, RunbookStep, StepRun
from runbooks.models.run import NOTE_MAX_LENGTH
from runbooks.specs import RunbookSpec, SectionSpec, StepSpec


class RunbookStepSerializer(serializers.ModelSerializer):
    target_service = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    timeout = serializers.IntegerField(
        source="timeout_seconds", read_only=True, allow_null=True, help_text="Seconds; null: the default."
    )

    class Meta:
        model = RunbookStep
        fields = [
            "id", "order", "section", "title", "instructions", "command", "kind", "action", "params", "safety",
            "expected", "target_service", "timeout", "parameters",
        ]  # fmt: skip


class SectionSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    title = serializers.CharField()
    kind = serializers.ChoiceField(choices=SectionKind.choices)
    level = serializers.IntegerField()
    body = serializers.CharField()
    body_html = serializers.CharField()


def _sections(version) -> list[dict]:
    return [
        {
            "index": n,
            "title": s["title"],
            "kind": s["kind"],
            "level": s["level"],
            "body": s["body"],
            "body_html": s["body_html"],
        }
        for n, s in enumerate(version.sections if version else [])
    ]


class RunbookSerializer(serializers.ModelSerializer):
    """A runbook as its current version (or `?version=N` on the detail endpoint) describes it."""

    services = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    version = serializers.SerializerMethodField()
    sections = serializers.SerializerMethodField()
    steps = serializers.SerializerMethodField()
    document = serializers.SlugRelatedField(slug_field="key", read_only=True, allow_null=True)

    class Meta:
        model = Runbook
        fields = [
            "id", "slug", "title", "alert_names", "services", "severity", "version", "sections", "steps",
            "owner", "category", "document", "updated_at",
        ]  # fmt: skip

    @staticmethod
    def prefetch(queryset):
        steps = RunbookStep.objects.select_related("target_service").order_by("order")
        return queryset.select_related("document", "current_version").prefetch_related(
            "services", Prefetch("current_version__steps", queryset=steps)
        )

    def _version(self, runbook):
        return self.context.get("version") or runbook.current_version

    def to_representation(self, runbook):
        data = super().to_representation(runbook)
        past = self.context.get("version")
        if past is not None:
            # A past version is described as it was, not with today's title, alerts or services.
            for field in ("title", "alert_names", "severity", "owner", "category", "services"):
                data[field] = getattr(past, field)
        return data

    def get_version(self, runbook) -> int:
        version = self._version(runbook)
        return version.number if version else 0

    @extend_schema_field(SectionSerializer(many=True))
    def get_sections(self, runbook) -> list[dict]:
        return _sections(self._version(runbook))

    @extend_schema_field(RunbookStepSerializer(many=True))
    def get_steps(self, runbook) -> list[dict]:
        version = self._version(runbook)
        return RunbookStepSerializer(version.steps.all() if version else [], many=True).data


class SectionInputSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=300)
    kind = serializers.ChoiceField(choices=SectionKind.choices, default=SectionKind.PROCEDURE)
    level = serializers.IntegerField(min_value=1, max_value=8, default=2)
    body = serializers.CharField(allow_blank=True, default="", max_length=200_000)


class StepInputSerializer(serializers.Serializer):
    section = serializers.IntegerField(min_value=0, default=0)
    title = serializers.CharField(max_length=300)
    instructions = serializers.CharField(allow_blank=True, default="", max_length=20_000)
    command = serializers.CharField(allow_blank=True, default="", max_length=20_000)
    kind = serializers.ChoiceField(choices=StepKind.choices, default=StepKind.MANUAL)
    action = serializers.CharField(allow_blank=True, default="", max_length=40)
    params = serializers.JSONField(default=dict)
    safety = serializers.ChoiceField(choices=Safety.choices, default=Safety.READ_ONLY)
    expected = serializers.CharField(allow_blank=True, default="", max_length=2000)
    target_service = serializers.SlugField(allow_blank=True, default="")
    timeout = serializers.IntegerField(min_value=1, max_value=settings.RUNBOOK_STEP_TIMEOUT_MAX, required=False)
    parameters = serializers.ListField(
        child=serializers.DictField(), default=list, max_length=50, help_text="Left empty: read from the step."
    )


class RunbookWriteSerializer(serializers.Serializer):
    """The body of POST (a new runbook) and PUT/PATCH (a new version of it)."""

    title = serializers.CharField(max_length=200)
    slug = serializers.SlugField(max_length=150, required=False)
    category = serializers.CharField(max_length=200, allow_blank=True, default="")
    alert_names = serializers.ListField(child=serializers.CharField(max_length=200), default=list)
    services = serializers.ListField(child=serializers.SlugField(), default=list)
    severity = serializers.CharField(allow_blank=True, default="", max_length=4)
    owner = serializers.CharField(max_length=120, allow_blank=True, default="")
    sections = SectionInputSerializer(many=True, default=list)
    steps = StepInputSerializer(many=True, default=list)

    def to_spec(self, base: RunbookSpec | None = None) -> RunbookSpec:
        data = dict(self.validated_data)
        if base is not None:
            # PATCH: what is left out stays as in the current version.
            data = {**_spec_dict(base), **data}
        return RunbookSpec(
            title=data["title"],
            slug=data.get("slug", ""),
            category=data.get("category", ""),
            alert_names=data.get("alert_names", []),
            severity=data.get("severity", ""),
            owner=data.get("owner", ""),
            services=data.get("services", []),
            sections=[SectionSpec(**s) for s in data.get("sections", [])],
            steps=[StepSpec(**s) for s in data.get("steps", [])],
            source=data.get("source", ""),
        )


def _spec_dict(spec: RunbookSpec) -> dict:
    return {
        "title": spec.title,
        "slug": spec.slug,
        "category": spec.category,
        "alert_names": spec.alert_names,
        "severity": spec.severity,
        "owner": spec.owner,
        "services": spec.services,
        "sections": [vars(s) for s in spec.sections],
        "steps": [vars(s) for s in spec.steps],
        "source": spec.source,
    }


def spec_of(runbook: Runbook) -> RunbookSpec:
    """The current version as a spec, so a partial edit starts from it."""
    version = runbook.current_version
    return RunbookSpec(
        title=version.title,
        slug=runbook.slug,
        category=version.category,
        alert_names=list(version.alert_names),
        severity=version.severity,
        owner=version.owner,
        services=list(version.services),
        sections=[SectionSpec(s["title"], s["kind"], s["level"], s["body"]) for s in version.sections],
        steps=[
            StepSpec(
                title=s.title,
                section=s.section,
                instructions=s.instructions,
                command=s.command,
                kind=s.kind,
                action=s.action,
                params=s.params,
                safety=s.safety,
                expected=s.expected,
                target_service=s.target_service.slug if s.target_service else "",
                timeout=s.timeout_seconds,
                parameters=list(s.parameters),
            )
            for s in version.steps.select_related("target_service").order_by("order")
        ],
        source=version.source,
    )


class ImportSerializer(serializers.Serializer):
    file = serializers.FileField()
    services = serializers.ListField(child=serializers.SlugField(), required=False)
    owner = serializers.CharField(max_length=120, allow_blank=True, default="")

    def validate_file(self, upload):
        limit = settings.RUNBOOK_IMPORT_MAX_BYTES
        if upload.size > limit:
            # Refused before it is read: an upload is streamed to disk, reading it would fill memory.
            raise serializers.ValidationError(
                f"{upload.name} is {upload.size / 1048576:.1f} MB; runbook documents may be at most "
                f"{limit / 1048576:.1f} MB."
            )
        return upload


class StepRunSerializer(serializers.ModelSerializer):
    completed_by = UserField(read_only=True, allow_null=True)
    approved_by = UserField(read_only=True, allow_null=True)
    title = serializers.CharField(source="step.title", read_only=True)
    kind = serializers.CharField(source="step.kind", read_only=True)
    safety = serializers.CharField(source="step.safety", read_only=True)
    action = serializers.CharField(source="step.action", read_only=True)
    waiting_for = serializers.CharField(read_only=True, allow_null=True)
    output_hidden = serializers.SerializerMethodField(
        help_text="The step's output is an authenticated request's answer, which viewers do not see."
    )

    class Meta:
        model = StepRun
        fields = [
            "id", "step", "state", "attempts", "output", "result", "started_at", "finished_at", "completed_by",
            "approved_by", "approval_note", "note", "order", "title", "kind", "safety", "action", "waiting_for",
            "output_hidden",
        ]  # fmt: skip

    def _hidden(self, step_run) -> bool:
        request = self.context.get("request")
        return step_run.output_hidden_from(request.user if request else None)

    def get_output_hidden(self, step_run) -> bool:
        return self._hidden(step_run)

    def to_representation(self, step_run):
        data = super().to_representation(step_run)
        if data["output_hidden"]:
            data["output"] = ""
            data["result"] = {k: v for k, v in data["result"].items() if k not in StepRun.PRIVATE_RESULT_KEYS}
        return data


class RunSerializer(serializers.ModelSerializer):
    runbook_version = serializers.IntegerField(source="version.number", read_only=True)
    started_by = UserField(read_only=True)
    steps = StepRunSerializer(source="step_runs", many=True, read_only=True)
    cancel_requested = serializers.SerializerMethodField()

    class Meta:
        model = RunbookRun
        fields = [
            "id", "runbook", "runbook_version", "incident", "target", "state", "started_by", "steps",
            "forced", "first_look", "params", "summary", "cancel_requested", "created_at", "started_at",
            "finished_at",
        ]  # fmt: skip

    def get_cancel_requested(self, run) -> bool:
        return run.cancel_requested_at is not None


class RunCreateSerializer(serializers.Serializer):
    runbook = serializers.PrimaryKeyRelatedField(queryset=Runbook.objects.all())
    incident = serializers.PrimaryKeyRelatedField(queryset=Incident.objects.all(), allow_null=True, required=False)
    target = serializers.PrimaryKeyRelatedField(queryset=Service.objects.all(), allow_null=True, required=False)
    force = serializers.BooleanField(default=False)
    params = serializers.DictField(
        child=serializers.CharField(max_length=200, trim_whitespace=False),
        default=dict,
        help_text="Values for the runbook's parameters by name (see each step's parameters); those left out "
        "are read from the incident's alert labels of the same name when there is one value for them.",
    )


class StepActionSerializer(serializers.Serializer):
    note = serializers.CharField(allow_blank=True, default="", max_length=NOTE_MAX_LENGTH)
    skip = serializers.BooleanField(default=False, help_text="complete only: mark the step skipped instead of done.")
