"""On-call schedules over the API: schedules, layers, overrides, and who is on call at a moment.

Everyone signed in reads; admins change schedules and layers; responders also add and remove
overrides (swaps and holiday cover are what on-call people do themselves).
"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.response import Response

from incidents import oncall
from incidents.api.serializers import UserField
from incidents.models import LayerParticipant, Schedule, ScheduleLayer, ScheduleOverride
from incidents.models.schedules import validate_weekdays
from opsportal.roles import is_admin, is_responder, is_viewer

User = get_user_model()
SHIFTS_MAX_DAYS = 93  # a quarter: the calendar shows two weeks, feeds a few months
PARTICIPANTS_MAX = 100


class _ReadViewerWrite(BasePermission):
    check = staticmethod(is_admin)
    message = "You need the admin role to change schedules."

    def has_permission(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return is_viewer(request.user)
        return self.check(request.user)


class ScheduleWrite(_ReadViewerWrite):
    pass


class OverrideWrite(_ReadViewerWrite):
    check = staticmethod(is_responder)
    message = "You need the responder role to change overrides."


def shift_data(shift: oncall.Shift | None) -> dict | None:
    if shift is None:
        return None
    return {
        "user": shift.user.get_username(),
        "source": shift.source,
        "start": shift.start.isoformat(),
        "end": shift.end.isoformat(),
    }


class ParticipantsField(serializers.ListField):
    """Usernames in, usernames out (read from the layer's prefetched participants)."""

    def to_representation(self, data):
        return [p.user.get_username() for p in data.all()]


class LayerSerializer(serializers.ModelSerializer):
    schedule = serializers.PrimaryKeyRelatedField(queryset=Schedule.objects.all())
    participants = ParticipantsField(
        child=serializers.SlugRelatedField(slug_field="username", queryset=User.objects.filter(is_active=True)),
        max_length=PARTICIPANTS_MAX,
        help_text="Usernames in rotation order; a person may appear more than once.",
    )
    restrict_weekdays = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=6), required=False, max_length=7
    )

    class Meta:
        model = ScheduleLayer
        fields = [
            "id", "schedule", "name", "priority", "shift_length", "shift_unit", "rotation_start", "handoff_time",
            "restrict_weekdays", "restrict_start", "restrict_end", "participants",
        ]  # fmt: skip
        validators = []  # the priority clash is reported on its field by validate()

    def validate_restrict_weekdays(self, value):
        validate_weekdays(value)
        return value

    def validate(self, attrs):
        start = attrs.get("restrict_start", getattr(self.instance, "restrict_start", None))
        end = attrs.get("restrict_end", getattr(self.instance, "restrict_end", None))
        if (start is None) != (end is None):
            raise serializers.ValidationError({"restrict_end": "Give both ends of the time window, or neither."})
        if start is not None and start == end:
            raise serializers.ValidationError({"restrict_end": "The window's end must differ from its start."})
        schedule = attrs.get("schedule", getattr(self.instance, "schedule", None))
        priority = attrs.get("priority", getattr(self.instance, "priority", 1))
        clash = ScheduleLayer.objects.filter(schedule=schedule, priority=priority)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError({"priority": f"The schedule already has a layer at priority {priority}."})
        return attrs

    def _save(self, instance, validated_data):
        people = validated_data.pop("participants", None)
        with transaction.atomic():
            for field, value in validated_data.items():
                setattr(instance, field, value)
            try:
                with transaction.atomic():
                    instance.save()
            except IntegrityError as exc:  # a concurrent request took the priority after validate()
                raise serializers.ValidationError(
                    {"priority": "Another layer of the schedule has this priority."}
                ) from exc
            if people is not None:
                instance.participants.all().delete()
                LayerParticipant.objects.bulk_create(
                    LayerParticipant(layer=instance, user=user, position=i) for i, user in enumerate(people)
                )
        return instance

    def create(self, validated_data):
        return self._save(ScheduleLayer(), validated_data)

    def update(self, instance, validated_data):
        return self._save(instance, validated_data)


class ScheduleSerializer(serializers.ModelSerializer):
    layers = serializers.SerializerMethodField()
    on_call_now = serializers.SerializerMethodField()

    class Meta:
        model = Schedule
        fields = ["id", "name", "time_zone", "description", "layers", "on_call_now"]

    def get_layers(self, schedule) -> list[dict]:
        return LayerSerializer(schedule.layers.all(), many=True).data

    def get_on_call_now(self, schedule) -> dict | None:
        return shift_data(oncall.on_call_at(schedule, self.context["now"]))


class OverrideSerializer(serializers.ModelSerializer):
    schedule = serializers.PrimaryKeyRelatedField(queryset=Schedule.objects.all())
    user = UserField(allow_null=False, required=True)
    created_by = UserField(read_only=True)

    class Meta:
        model = ScheduleOverride
        fields = ["id", "schedule", "user", "starts_at", "ends_at", "note", "created_by", "created_at"]

    def validate(self, attrs):
        starts = attrs.get("starts_at", getattr(self.instance, "starts_at", None))
        ends = attrs.get("ends_at", getattr(self.instance, "ends_at", None))
        if starts and ends and ends <= starts:
            raise serializers.ValidationError({"ends_at": "The override must end after it starts."})
        return attrs


class AtSerializer(serializers.Serializer):
    at = serializers.DateTimeField(required=False, help_text="ISO 8601 with offset; default now.")


class PeriodSerializer(serializers.Serializer):
    start = serializers.DateTimeField(required=False, help_text="Default now.")
    end = serializers.DateTimeField(required=False, help_text="Default two weeks after start.")

    def validate(self, attrs):
        start = attrs.get("start") or timezone.now()
        end = attrs.get("end") or start + timedelta(days=14)
        if end <= start:
            raise serializers.ValidationError({"end": "end must be after start."})
        if end - start > timedelta(days=SHIFTS_MAX_DAYS):
            raise serializers.ValidationError({"end": f"At most {SHIFTS_MAX_DAYS} days per request."})
        return {"start": start, "end": end}


def _query(serializer_class, request) -> dict:
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data


class ScheduleViewSet(viewsets.ModelViewSet):
    serializer_class = ScheduleSerializer
    permission_classes = [ScheduleWrite]

    def _at(self):
        if not hasattr(self, "_moment"):
            wanted = self.action in ("oncall", "oncall_all")
            self._moment = (_query(AtSerializer, self.request).get("at") if wanted else None) or timezone.now()
        return self._moment

    def get_queryset(self):
        at = self._at()
        return oncall.with_rotations(Schedule.objects.all(), at, at + timedelta(microseconds=1))

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "now": self._at()}

    @extend_schema(parameters=[OpenApiParameter("at", str, description="ISO 8601; default now")])
    @action(detail=True, methods=["get"])
    def oncall(self, request, pk=None):
        """Who the schedule puts on call at `at` (default now); `on_call` is null when nobody is."""
        schedule = self.get_object()
        at = self._at()
        return Response(
            {"schedule": schedule.name, "at": at.isoformat(), "on_call": shift_data(oncall.on_call_at(schedule, at))}
        )

    @extend_schema(
        operation_id="schedules_oncall_all",
        parameters=[OpenApiParameter("at", str, description="ISO 8601; default now")],
    )
    @action(detail=False, methods=["get"], url_path="oncall")
    def oncall_all(self, request):
        """Every schedule and who it puts on call at `at` (default now)."""
        at = self._at()
        return Response(
            {
                "at": at.isoformat(),
                "schedules": [
                    {"id": s.pk, "schedule": s.name, "on_call": shift_data(shift)}
                    for s, shift in oncall.on_call_now(self.get_queryset(), at)
                ],
            }
        )

    @extend_schema(parameters=[OpenApiParameter("start", str), OpenApiParameter("end", str)])
    @action(detail=True, methods=["get"])
    def shifts(self, request, pk=None):
        """The final shifts between `start` and `end` (default: the next two weeks), overrides applied."""
        period = _query(PeriodSerializer, request)
        schedule = self.get_object()
        loaded = oncall.load([schedule.pk], period["start"], period["end"])[0]
        return Response(
            {
                "schedule": schedule.name,
                "time_zone": schedule.time_zone,
                "start": period["start"].isoformat(),
                "end": period["end"].isoformat(),
                "shifts": [shift_data(s) for s in oncall.shifts(loaded, period["start"], period["end"])],
            }
        )


class LayerViewSet(viewsets.ModelViewSet):
    queryset = ScheduleLayer.objects.select_related("schedule").prefetch_related("participants__user")
    serializer_class = LayerSerializer
    permission_classes = [ScheduleWrite]
    filterset_fields = ["schedule"]


class OverrideViewSet(viewsets.ModelViewSet):
    queryset = ScheduleOverride.objects.select_related("user", "created_by")
    serializer_class = OverrideSerializer
    permission_classes = [OverrideWrite]
    filterset_fields = ["schedule", "user"]

    def perform_create(self, serializer):
        serializer.save(created_by=self.request.user)
