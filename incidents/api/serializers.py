from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework import serializers

from incidents.choices import EventKind
from incidents.models import Incident, Service, TimelineEvent, TimelineEventRevision

User = get_user_model()


class UserField(serializers.SlugRelatedField):
    """Users are named by username in the API (what people type in scripts)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("slug_field", "username")
        if not kwargs.get("read_only"):
            kwargs.setdefault("queryset", User.objects.filter(is_active=True))
            kwargs.setdefault("allow_null", True)
            kwargs.setdefault("required", False)
        super().__init__(**kwargs)


class IncidentSerializer(serializers.ModelSerializer):
    reference = serializers.CharField(read_only=True)
    commander = UserField()
    scribe = UserField()
    communications_lead = UserField()
    services = serializers.SlugRelatedField(
        slug_field="slug", many=True, required=False, queryset=Service.objects.all()
    )
    summary = serializers.CharField(required=False, allow_blank=True, max_length=settings.TIMELINE_BODY_MAX_LENGTH)

    class Meta:
        model = Incident
        fields = [
            "id", "reference", "title", "summary", "severity", "status",
            "commander", "scribe", "communications_lead", "services",
            "started_at", "detected_at", "acknowledged_at", "mitigated_at", "resolved_at", "closed_at",
            "created_at", "updated_at", "public", "public_title", "public_message",
        ]  # fmt: skip
        read_only_fields = [
            "status", "acknowledged_at", "mitigated_at", "resolved_at", "closed_at", "created_at", "updated_at",
            "public", "public_title", "public_message",
        ]  # fmt: skip
        extra_kwargs = {"started_at": {"required": False}, "detected_at": {"required": False}}

    def validate(self, attrs):
        if "status" in self.initial_data:
            raise serializers.ValidationError(
                {"status": 'Status changes go through POST /api/incidents/{id}/transition/ {"to": ...}.'}
            )
        return attrs


class PublishSerializer(serializers.Serializer):
    public = serializers.BooleanField(help_text="true: show on the public status page; false: take it off.")
    public_title = serializers.CharField(
        required=False,
        max_length=200,
        help_text="What customers read as the title; never the internal one (default: the public services).",
    )
    public_message = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class TransitionSerializer(serializers.Serializer):
    to = serializers.CharField()
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class TimelineEventSerializer(serializers.ModelSerializer):
    author = UserField(read_only=True)
    body = serializers.CharField(max_length=settings.TIMELINE_BODY_MAX_LENGTH)
    annotation = serializers.CharField(required=False, allow_blank=True, max_length=settings.TIMELINE_BODY_MAX_LENGTH)
    deleted = serializers.BooleanField(source="is_deleted", read_only=True)

    class Meta:
        model = TimelineEvent
        fields = [
            "id", "incident", "occurred_at", "kind", "author", "body", "body_html", "pinned", "source",
            "version", "created_at", "edited_at", "annotation", "annotation_version", "annotation_html", "deleted",
        ]  # fmt: skip
        read_only_fields = [
            "incident", "body_html", "source", "version", "created_at", "edited_at", "annotation_version",
            "annotation_html",
        ]  # fmt: skip

    def validate_kind(self, value):
        if value == EventKind.STATUS_CHANGE:
            raise serializers.ValidationError("Status changes are recorded by the transition endpoint.")
        return value


class TimelineEventUpdateSerializer(serializers.Serializer):
    """PATCH body: the versions the editor saw, and the fields to change.

    `version` guards body, kind and occurred_at; `annotation_version` guards the annotation;
    `pinned` needs neither and changes neither."""

    version = serializers.IntegerField(required=False, min_value=1)
    annotation_version = serializers.IntegerField(required=False, min_value=1)
    body = serializers.CharField(required=False, max_length=settings.TIMELINE_BODY_MAX_LENGTH)
    kind = serializers.ChoiceField(required=False, choices=[c for c in EventKind.choices if c[0] != "status_change"])
    occurred_at = serializers.DateTimeField(required=False)
    pinned = serializers.BooleanField(required=False)
    annotation = serializers.CharField(required=False, allow_blank=True, max_length=settings.TIMELINE_BODY_MAX_LENGTH)

    def validate(self, attrs):
        unknown = set(self.initial_data) - set(self.fields)
        if unknown:
            raise serializers.ValidationError(
                {"detail": f"These fields cannot be changed: {', '.join(sorted(unknown))}."}
            )
        if "annotation" in attrs and "annotation_version" not in attrs:
            raise serializers.ValidationError(
                {"annotation_version": "Required with annotation: the annotation_version you saw."}
            )
        if not set(attrs) - {"version", "annotation_version"}:
            raise serializers.ValidationError(
                {"detail": "Nothing to change: send body, kind, occurred_at, pinned or annotation."}
            )
        return attrs


class RevisionSerializer(serializers.ModelSerializer):
    edited_by = UserField(read_only=True)

    class Meta:
        model = TimelineEventRevision
        fields = [
            "id",
            "version",
            "action",
            "body",
            "annotation",
            "kind",
            "occurred_at",
            "pinned",
            "edited_by",
            "created_at",
        ]
