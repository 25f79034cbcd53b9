"""Bodies and answers of the ops API."""

from rest_framework import serializers

from incidents.models import Incident, Service
from ops import approvals
from ops.actions.cache import matches_everything
from ops.models import ActionRequest, FailedTask, RetentionRun


class FailedTaskSerializer(serializers.ModelSerializer):
    reason = serializers.CharField(source="exception")

    class Meta:
        model = FailedTask
        fields = ["id", "task_id", "name", "queue", "args", "kwargs", "reason", "failed_at"]


class RetentionRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = RetentionRun
        fields = ["id", "started_at", "duration_ms", "retention_days", "dry_run", "counts"]


def _incident_field():
    return serializers.PrimaryKeyRelatedField(
        queryset=Incident.objects.all(),
        required=False,
        allow_null=True,
        help_text="Run for this incident: the action is also written on its timeline.",
    )


def _service_field():
    return serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Service.objects.all(),
        required=False,
        allow_null=True,
        help_text="Act on this service (its broker, Redis or database URL) instead of the portal itself.",
    )


class DryRunBody(serializers.Serializer):
    dry_run = serializers.BooleanField(default=False)
    incident = _incident_field()

    def validate(self, data):
        # A misspelt or unsupported field must not be ignored by an action that changes things.
        unknown = set(self.initial_data) - set(self.fields) if isinstance(self.initial_data, dict) else set()
        if unknown:
            raise serializers.ValidationError(
                f"unknown parameters: {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(self.fields))}."
            )
        return data


class TargetBody(DryRunBody):
    service = _service_field()


class QueueBody(TargetBody):
    queue = serializers.CharField(required=False, max_length=100)


class IdsBody(DryRunBody):
    ids = serializers.ListField(child=serializers.IntegerField(min_value=1), allow_empty=False, max_length=1000)


class InvalidateBody(TargetBody):
    tags = serializers.ListField(child=serializers.CharField(max_length=100), required=False, allow_empty=False)
    pattern = serializers.CharField(required=False, max_length=200)
    dangerous = serializers.BooleanField(
        default=False, help_text="Needed for a pattern that matches every key: the flush then waits for approval."
    )
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500)

    def validate(self, data):
        data = super().validate(data)
        if ("tags" in data) == ("pattern" in data):
            raise serializers.ValidationError("Give either tags (a non-empty list) or pattern.")
        if "pattern" in data and matches_everything(data["pattern"]) and not data["dangerous"]:
            raise serializers.ValidationError(
                f"The pattern {data['pattern']!r} matches every key: that is a flush, a dangerous action. "
                'Send "dangerous": true with a "reason" to ask another admin to approve it.'
            )
        return data


class MaintenanceBody(DryRunBody):
    enabled = serializers.BooleanField()
    message = serializers.CharField(required=False, allow_blank=True, max_length=300)


class OpsResultSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What the action did (or, dry run, would do).")
    result = serializers.DictField(help_text="status, summary, figures and the action's own data.")


class TasksSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["failed", "pending"])
    tasks = serializers.ListField(child=serializers.DictField())


class CacheStatsSerializer(serializers.Serializer):
    backend = serializers.CharField()
    available = serializers.BooleanField()
    keys = serializers.IntegerField(required=False)
    hit_rate = serializers.FloatField(allow_null=True, required=False)
    used_memory = serializers.CharField(allow_null=True, required=False)
    tags = serializers.DictField(child=serializers.IntegerField())


class LastRetentionSerializer(serializers.Serializer):
    last_run = RetentionRunSerializer(allow_null=True)


class MaintenanceStateSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()
    message = serializers.CharField()
    changed_at = serializers.DateTimeField(allow_null=True)


class ActionRequestSerializer(serializers.ModelSerializer):
    state_label = serializers.CharField(source="get_state_display", read_only=True)
    requested_by = serializers.CharField(
        source="requested_by.get_username", default=None, read_only=True, allow_null=True
    )
    service = serializers.CharField(source="service.slug", default=None, read_only=True, allow_null=True)
    decided_by = serializers.CharField(source="decided_by.get_username", default=None, read_only=True, allow_null=True)

    class Meta:
        model = ActionRequest
        fields = [
            "id", "action", "service", "params", "reason", "incident", "state", "state_label", "preview",
            "requested_by", "requested_at", "expires_at", "decided_by", "decided_at", "decision_note",
            "started_at", "finished_at", "summary", "result",
        ]  # fmt: skip
        read_only_fields = fields


class ActionRequestPageSerializer(serializers.Serializer):
    """GET /api/ops/requests: a page of requests, like every list of the API (?page, ?page_size)."""

    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ActionRequestSerializer(many=True)


class AskBody(serializers.Serializer):
    action = serializers.ChoiceField(choices=approvals.approvable())
    params = serializers.DictField(required=False, default=dict)
    reason = serializers.CharField(max_length=500)
    incident = _incident_field()
    service = _service_field()


class DecisionBody(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")
