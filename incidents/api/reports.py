"""Problem reports over the API: the public intake (no sign-in, throttled) and staff triage."""

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException
from rest_framework.parsers import FormParser, JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from incidents.api.serializers import IncidentSerializer, UserField
from incidents.choices import ReportStatus, Severity
from incidents.models import Incident, ProblemReport, Service
from incidents.models.report import (
    REPORT_DESCRIPTION_MAX,
    REPORT_MAX_BODY_BYTES,
    body_too_large,
    may_see_reporter,
    record_received,
    record_rejected,
    record_throttled,
)
from opsportal import metrics
from opsportal.roles import IsViewer
from opsportal.throttles import CacheUnavailable, LeadBurstThrottle, LeadHourlyThrottle


class PublicReportSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    email = serializers.EmailField(max_length=254)
    service = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Service.objects.filter(public=True),
        required=False,
        allow_null=True,
        help_text="Slug of a public service; leave out when unsure.",
    )
    description = serializers.CharField(min_length=10, max_length=REPORT_DESCRIPTION_MAX)
    website = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="Leave empty (a trap for bots)."
    )

    def validate_website(self, value):
        if value:
            raise serializers.ValidationError("Report rejected.")
        return value


class IntakeUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Problem reports cannot be accepted right now; try again in a minute."
    wait = 60  # sent as Retry-After by DRF's exception handler


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = f"A problem report must be smaller than {REPORT_MAX_BODY_BYTES // 1024} KiB."


class PublicReportView(APIView):
    """Anyone may report a problem; throttled per client IP by LeadBurstThrottle and LeadHourlyThrottle."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [LeadBurstThrottle, LeadHourlyThrottle]
    parser_classes = [JSONParser, FormParser]

    def initial(self, request, *args, **kwargs):
        metrics.public_leads_requests_total.inc()
        super().initial(request, *args, **kwargs)

    def check_throttles(self, request):
        try:
            super().check_throttles(request)
        except CacheUnavailable:
            record_rejected("unavailable")
            raise IntakeUnavailable() from None

    def throttled(self, request, wait):
        record_throttled(wait)
        super().throttled(request, wait)

    @extend_schema(request=PublicReportSerializer, responses={201: None})
    def post(self, request):
        if body_too_large(request):
            record_rejected("too_large")
            raise PayloadTooLarge()
        payload = PublicReportSerializer(data=request.data)
        if not payload.is_valid():
            record_rejected("honeypot" if "website" in payload.errors else "invalid")
            return Response(payload.errors, status=status.HTTP_400_BAD_REQUEST)
        data = dict(payload.validated_data)
        data.pop("website")
        report = ProblemReport.submit(**data)
        record_received(report)
        return Response(
            {"id": report.pk, "detail": "Thank you: your report reached the on-call team."},
            status=status.HTTP_201_CREATED,
        )


# `create_report.cls.throttle_classes` is what the ThrottleDisabledOrNotWorking runbook inspects.
create_report = PublicReportView.as_view()


# --- staff triage -------------------------------------------------------------------------------


class ProblemReportSerializer(serializers.ModelSerializer):
    reference = serializers.CharField(read_only=True)
    name = serializers.CharField(
        read_only=True,
        allow_null=True,
        help_text="The reporter's name: null for viewers (personal data), empty once the retention sweep removed it.",
    )
    email = serializers.CharField(
        read_only=True,
        allow_null=True,
        help_text="The reporter's e-mail: null for viewers (personal data), empty once the retention sweep removed it.",
    )
    service = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    incident = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    triaged_by = UserField(read_only=True, allow_null=True)

    class Meta:
        model = ProblemReport
        fields = [
            "id", "reference", "name", "email", "service", "description", "status", "incident",
            "triaged_by", "triaged_at", "dismiss_reason", "created_at",
        ]  # fmt: skip
        read_only_fields = fields

    def to_representation(self, instance):
        data = super().to_representation(instance)
        request = self.context.get("request")
        if request is None or not may_see_reporter(request.user):
            data["name"] = data["email"] = None
        return data


class EscalateSerializer(serializers.Serializer):
    incident = serializers.PrimaryKeyRelatedField(
        queryset=Incident.objects.open(), required=False, allow_null=True, help_text="Attach to this open incident."
    )
    title = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    severity = serializers.ChoiceField(choices=Severity.choices, default=Severity.SEV3)


class DismissSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


class ProblemReportFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=ReportStatus.choices)

    class Meta:
        model = ProblemReport
        fields = ["status"]


class ProblemReportViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Reports for staff: read by every role, triaged by responders."""

    queryset = ProblemReport.objects.for_list()
    serializer_class = ProblemReportSerializer
    filterset_class = ProblemReportFilter
    permission_classes = [IsViewer]

    @extend_schema(request=EscalateSerializer, responses=IncidentSerializer)
    @action(detail=True, methods=["post"])
    def escalate(self, request, pk=None):
        report = self.get_object()
        payload = EscalateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        incident = report.escalate(by=request.user, **payload.validated_data)
        incident = Incident.objects.for_detail().get(pk=incident.pk)
        return Response(IncidentSerializer(incident, context=self.get_serializer_context()).data)

    @extend_schema(request=DismissSerializer, responses=ProblemReportSerializer)
    @action(detail=True, methods=["post"])
    def dismiss(self, request, pk=None):
        report = self.get_object()
        payload = DismissSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        report.dismiss(by=request.user, **payload.validated_data)
        return Response(self.get_serializer(self.get_queryset().get(pk=report.pk)).data)
