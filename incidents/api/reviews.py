"""API of post-incident reviews and their action items."""

import django_filters
from django.conf import settings
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from incidents.api.serializers import UserField
from incidents.choices import ActionItemKind, ActionItemStatus, ReviewState
from incidents.models import ActionItem, Incident, PostIncidentReview
from incidents.models.review import METRIC_NAMES, TEXT_FIELDS
from incidents.review_export import export_markdown
from incidents.review_stats import incident_stats

TEXT = {"required": False, "allow_blank": True, "max_length": settings.TIMELINE_BODY_MAX_LENGTH}


class ReviewSerializer(serializers.ModelSerializer):
    owner = UserField(read_only=True, allow_null=True)
    overdue = serializers.BooleanField(read_only=True)
    times = serializers.SerializerMethodField()
    incident_reference = serializers.CharField(source="incident.reference", read_only=True)

    class Meta:
        model = PostIncidentReview
        fields = [
            "id", "incident", "incident_reference", "state", "owner", "due_at", "overdue", "version",
            *TEXT_FIELDS[:-1], "customer_facing", "no_action_needed", "no_action_reason", "times", "published_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_times(self, review) -> dict:
        return review.times()


class TimeOverrideSerializer(serializers.Serializer):
    seconds = serializers.IntegerField(min_value=0, allow_null=True)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500)


class ReviewUpdateSerializer(serializers.Serializer):
    """PATCH body: the version the editor loaded, and the fields to save."""

    version = serializers.IntegerField(min_value=1)
    owner = UserField()
    customer_facing = serializers.BooleanField(required=False, allow_null=True)
    no_action_needed = serializers.BooleanField(required=False)
    time_overrides = serializers.DictField(child=TimeOverrideSerializer(allow_null=True), required=False)

    def get_fields(self):
        fields = super().get_fields()
        for name in TEXT_FIELDS:
            fields[name] = serializers.CharField(**TEXT)
        return fields

    def validate(self, attrs):
        unknown = set(self.initial_data) - set(self.fields)
        if unknown:
            raise serializers.ValidationError(
                {"detail": f"These fields cannot be changed: {', '.join(sorted(unknown))}."}
            )
        bad = set(attrs.get("time_overrides", {})) - set(METRIC_NAMES)
        if bad:
            raise serializers.ValidationError(
                {"time_overrides": f"Unknown times {sorted(bad)}; expected some of {METRIC_NAMES}."}
            )
        return attrs


class ActionItemSerializer(serializers.ModelSerializer):
    owner = UserField()
    kind = serializers.ChoiceField(choices=ActionItemKind.choices, default=ActionItemKind.FIX)

    class Meta:
        model = ActionItem
        fields = ["id", "review", "title", "kind", "owner", "due_date", "status", "reason"]
        read_only_fields = ["review"]
        extra_kwargs = {"status": {"required": False}, "reason": {"required": False, "max_length": 2000}}

    def validate(self, attrs):
        if self.instance is None and attrs.get("status", ActionItemStatus.OPEN) != ActionItemStatus.OPEN:
            raise serializers.ValidationError({"status": "A new action item starts open."})
        return attrs


class ReviewFilter(django_filters.FilterSet):
    state = django_filters.MultipleChoiceFilter(choices=ReviewState.choices)
    overdue = django_filters.BooleanFilter(method="filter_overdue")
    owner = django_filters.CharFilter(field_name="owner__username")

    def filter_overdue(self, queryset, name, value):
        overdue = PostIncidentReview.objects.overdue().values("pk")
        return queryset.filter(pk__in=overdue) if value else queryset.exclude(pk__in=overdue)


class ReviewViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = PostIncidentReview.objects.for_api()
    serializer_class = ReviewSerializer
    filterset_class = ReviewFilter
    http_method_names = ["get", "post", "patch", "head", "options"]

    def _fresh(self, review):
        return Response(ReviewSerializer(self.get_queryset().get(pk=review.pk)).data)

    @extend_schema(request=ReviewUpdateSerializer, responses=ReviewSerializer)
    def partial_update(self, request, *args, **kwargs):
        review = self.get_object()
        payload = ReviewUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        review.update(by=request.user, **data)
        return self._fresh(review)

    @extend_schema(request=None, responses=ReviewSerializer)
    @action(detail=True, methods=["post"])
    def publish(self, request, pk=None):
        review = self.get_object()
        review.publish(by=request.user)
        return self._fresh(review)

    @extend_schema(request=None, responses=ReviewSerializer)
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        review = self.get_object()
        review.submit(by=request.user)
        return self._fresh(review)

    @extend_schema(
        request=inline_serializer("ReviewReopen", {"reason": serializers.CharField(required=False)}),
        responses=ReviewSerializer,
    )
    @action(detail=True, methods=["post"])
    def reopen(self, request, pk=None):
        review = self.get_object()
        reason = request.data.get("reason", "") if isinstance(request.data, dict) else ""
        review.reopen(by=request.user, reason=str(reason))
        return self._fresh(review)

    # A review's few action items come whole (not paginated); POST answers the item it added.
    @extend_schema(methods=["GET"], responses=ActionItemSerializer(many=True))
    @extend_schema(methods=["POST"], request=ActionItemSerializer, responses={201: ActionItemSerializer})
    @action(detail=True, methods=["get", "post"], url_path="action-items", pagination_class=None)
    def action_items(self, request, pk=None):
        review = self.get_object()
        if request.method == "GET":
            items = review.action_items.select_related("owner")
            return Response(ActionItemSerializer(items, many=True).data)
        payload = ActionItemSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        item = review.add_action_item(
            by=request.user,
            title=data["title"],
            kind=data["kind"],
            owner=data.get("owner"),
            due_date=data.get("due_date"),
        )
        return Response(ActionItemSerializer(item).data, status=201)


class ActionItemViewSet(mixins.RetrieveModelMixin, mixins.UpdateModelMixin, viewsets.GenericViewSet):
    queryset = ActionItem.objects.select_related("owner", "review")
    serializer_class = ActionItemSerializer
    http_method_names = ["get", "patch", "head", "options"]

    def perform_update(self, serializer):
        with transaction.atomic():
            serializer.instance.change(by=self.request.user, **serializer.validated_data)


class IncidentReviewView(APIView):
    @extend_schema(responses=ReviewSerializer)
    def get(self, request, pk: int):
        incident = get_object_or_404(Incident, pk=pk)
        review = PostIncidentReview.objects.for_api().filter(incident=incident).first()
        if review is None:
            return Response(
                {"detail": f"{incident.reference} has no review yet: it opens when the incident is resolved."},
                status=404,
            )
        return Response(ReviewSerializer(review).data)


class ReviewExportView(APIView):
    @extend_schema(responses={(200, "text/markdown"): str})
    def get(self, request, pk: int):
        review = get_object_or_404(PostIncidentReview.objects.for_api(), pk=pk)
        response = HttpResponse(export_markdown(review), content_type="text/markdown; charset=utf-8")
        filename = f"{review.incident.reference}-review-{timezone.localdate():%Y%m%d}.md"
        response["Content-Disposition"] = f'inline; filename="{filename}"'
        return response


class IncidentStatsView(APIView):
    """The figures behind the reviews page charts."""

    @extend_schema(
        parameters=[OpenApiParameter("days", int, description="7 to 365 (90)")], responses=OpenApiTypes.OBJECT
    )
    def get(self, request):
        raw = request.query_params.get("days", "90")
        if not raw.isdigit() or not 7 <= int(raw) <= 365:
            return Response({"days": "A whole number of days between 7 and 365."}, status=400)
        return Response(incident_stats(days=int(raw)))
