from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from incidents.api.filters import IncidentFilter, TimelineFilter
from incidents.api.serializers import (
    IncidentSerializer,
    PublishSerializer,
    RevisionSerializer,
    TimelineEventSerializer,
    TimelineEventUpdateSerializer,
    TransitionSerializer,
)
from incidents.models import Incident, TimelineEvent


class IncidentViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    queryset = Incident.objects.for_detail()
    serializer_class = IncidentSerializer
    filterset_class = IncidentFilter
    http_method_names = ["get", "post", "patch", "head", "options"]

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        services = data.pop("services", [])
        serializer.instance = Incident.declare(by=self.request.user, services=services, **data)

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        serializer.instance.update_details(by=self.request.user, services=data.pop("services", None), **data)
        serializer.instance = self.get_queryset().get(pk=serializer.instance.pk)

    @extend_schema(request=TransitionSerializer, responses=IncidentSerializer)
    @action(detail=True, methods=["post"])
    def transition(self, request, pk=None):
        incident = self.get_object()
        payload = TransitionSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        incident.transition_to(payload.validated_data["to"], by=request.user, note=payload.validated_data["note"])
        return Response(self.get_serializer(self.get_queryset().get(pk=incident.pk)).data)

    @extend_schema(request=PublishSerializer, responses=IncidentSerializer)
    @action(detail=True, methods=["post"])
    def publish(self, request, pk=None):
        incident = self.get_object()
        payload = PublishSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        incident.set_public(by=request.user, **payload.validated_data)
        return Response(self.get_serializer(self.get_queryset().get(pk=incident.pk)).data)


class TimelineEventViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = TimelineEventSerializer
    filterset_class = TimelineFilter
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_incident(self) -> Incident:
        if not hasattr(self, "_incident"):
            self._incident = get_object_or_404(Incident, pk=self.kwargs["incident_pk"])
        return self._incident

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return TimelineEvent.objects.none()
        return TimelineEvent.objects.for_display().filter(incident=self.get_incident())

    def get_object(self):
        # Deleted entries stay addressable: they can be restored and their revisions read.
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = TimelineEvent.add_note(
            self.get_incident(),
            by=self.request.user,
            body=data["body"],
            kind=data.get("kind", "note"),
            occurred_at=data.get("occurred_at"),
            pinned=data.get("pinned", False),
        )

    @extend_schema(request=TimelineEventUpdateSerializer, responses=TimelineEventSerializer)
    def partial_update(self, request, *args, **kwargs):
        event = self.get_object()
        payload = TimelineEventUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        changes = dict(payload.validated_data)
        version = changes.pop("version", None)
        annotation_version = changes.pop("annotation_version", None)
        annotation = changes.pop("annotation", None)
        with transaction.atomic():
            if changes:
                event.edit(by=request.user, version=version, **changes)
            if annotation is not None:
                event.annotate(by=request.user, annotation_version=annotation_version, annotation=annotation)
        return Response(self.get_serializer(self.get_object()).data)

    def perform_destroy(self, instance):
        instance.soft_delete(by=self.request.user)

    @extend_schema(request=None, responses=TimelineEventSerializer)
    @action(detail=True, methods=["post"])
    def restore(self, request, *args, **kwargs):
        event = self.get_object()
        event.restore(by=request.user)
        return Response(self.get_serializer(self.get_object()).data)

    # An entry's revisions come whole, oldest first (not paginated).
    @extend_schema(responses=RevisionSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)
    def revisions(self, request, *args, **kwargs):
        event = self.get_object()
        revisions = event.revisions.select_related("edited_by")
        return Response(RevisionSerializer(revisions, many=True).data)
