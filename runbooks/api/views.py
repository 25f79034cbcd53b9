from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from opsportal.roles import IsAdmin, IsViewer
from runbooks.api.filters import RunbookFilter, RunFilter
from runbooks.api.serializers import (
    ImportSerializer,
    RunbookSerializer,
    RunbookWriteSerializer,
    RunCreateSerializer,
    RunSerializer,
    StepActionSerializer,
    spec_of,
)
from runbooks.importer import import_document
from runbooks.models import Runbook, RunbookRun, StepRun


class RunbookViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Runbooks; writing one (create, edit, import) stores a new version and needs the admin role."""

    queryset = RunbookSerializer.prefetch(Runbook.objects.published()).order_by("title", "id")
    serializer_class = RunbookSerializer
    filterset_class = RunbookFilter
    lookup_value_regex = r"\d+"
    http_method_names = ["get", "post", "put", "patch", "head", "options"]

    def get_permissions(self):
        if self.request.method in ("GET", "HEAD", "OPTIONS"):
            return [IsViewer()]
        return [IsAdmin()]

    @extend_schema(parameters=[OpenApiParameter("version", int, description="A past version number.")])
    def retrieve(self, request, *args, **kwargs):
        runbook = self.get_object()
        context = self.get_serializer_context()
        number = request.query_params.get("version", "")
        if number:
            if not number.isdigit():
                return Response({"detail": "version must be a number."}, status=status.HTTP_400_BAD_REQUEST)
            context["version"] = get_object_or_404(runbook.versions, number=int(number))
        return Response(RunbookSerializer(runbook, context=context).data)

    @extend_schema(request=RunbookWriteSerializer, responses={201: RunbookSerializer})
    def create(self, request, *args, **kwargs):
        payload = RunbookWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        runbook = Runbook.create(payload.to_spec(), by=request.user, note="Created through the API")
        return Response(self._fresh(runbook), status=status.HTTP_201_CREATED)

    @extend_schema(request=RunbookWriteSerializer, responses=RunbookSerializer)
    def update(self, request, *args, **kwargs):
        runbook = self.get_object()
        partial = kwargs.get("partial", False)
        payload = RunbookWriteSerializer(data=request.data, partial=partial)
        payload.is_valid(raise_exception=True)
        spec = payload.to_spec(spec_of(runbook) if partial else None)
        spec.slug = runbook.slug
        runbook.revise(spec, by=request.user, note="Edited through the API")
        return Response(self._fresh(runbook))

    def _fresh(self, runbook: Runbook) -> dict:
        return RunbookSerializer(self.get_queryset().get(pk=runbook.pk), context=self.get_serializer_context()).data

    @extend_schema(request={"multipart/form-data": ImportSerializer}, responses={201: dict})
    @action(detail=False, methods=["post"], url_path="import", parser_classes=[MultiPartParser, FormParser])
    def import_document(self, request):
        """Imports one markdown document (field `file`) and answers with the import report."""
        payload = ImportSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        upload = payload.validated_data["file"]
        report = import_document(
            upload.read(),
            name=upload.name,
            by=request.user,
            services=payload.validated_data.get("services"),
            owner=payload.validated_data["owner"],
        )
        ids = dict(Runbook.objects.filter(slug__in=[r.slug for r in report.runbooks]).values_list("slug", "pk"))
        body = {
            "document": report.key,
            "title": report.title,
            "shape": report.shape,
            "runbooks": [{"id": ids[r.slug], **r.as_json()} for r in report.runbooks],
            "steps": report.steps,
            "automated": dict(report.automated),
            "dangerous": report.dangerous,
            "document_sections": report.document_sections,
            "stale": report.stale,
            "warnings": report.warnings,
        }
        return Response(body, status=status.HTTP_201_CREATED)


class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    """Runs: reading is for every signed-in user; starting and acting on steps needs the responder role."""

    queryset = RunbookRun.objects.for_detail()
    serializer_class = RunSerializer
    filterset_class = RunFilter
    permission_classes = [IsViewer]

    @extend_schema(request=RunCreateSerializer, responses={201: RunSerializer})
    def create(self, request, *args, **kwargs):
        payload = RunCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        run = RunbookRun.start(
            data["runbook"],
            by=request.user,
            incident=data.get("incident"),
            target=data.get("target"),
            force=data["force"],
            params=data["params"],
        )
        return Response(self._fresh(run), status=status.HTTP_201_CREATED)

    def _fresh(self, run: RunbookRun) -> dict:
        return RunSerializer(self.get_queryset().get(pk=run.pk), context=self.get_serializer_context()).data

    @extend_schema(request=None, responses=RunSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        run = self.get_object()
        run.cancel(by=request.user)
        return Response(self._fresh(run))

    def _step(self, request, pk, step_id, verb: str):
        run = self.get_object()
        get_object_or_404(StepRun, pk=step_id, run=run)
        payload = StepActionSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        note = payload.validated_data["note"]
        if verb == "complete":
            run.complete_step(int(step_id), by=request.user, note=note, skip=payload.validated_data["skip"])
        elif verb == "approve":
            run.approve_step(int(step_id), by=request.user, note=note)
        else:
            run.reject_step(int(step_id), by=request.user, note=note)
        return Response(self._fresh(run))

    @extend_schema(request=StepActionSerializer, responses=RunSerializer)
    @action(detail=True, methods=["post"], url_path=r"steps/(?P<step_id>\d+)/complete")
    def complete(self, request, pk=None, step_id=None):
        """Ticks the current manual step (or skips it with `skip: true`), with an optional note."""
        return self._step(request, pk, step_id, "complete")

    @extend_schema(request=StepActionSerializer, responses=RunSerializer)
    @action(detail=True, methods=["post"], url_path=r"steps/(?P<step_id>\d+)/approve")
    def approve(self, request, pk=None, step_id=None):
        """Approves the current step: a dangerous one by someone other than the run's starter."""
        return self._step(request, pk, step_id, "approve")

    @extend_schema(request=StepActionSerializer, responses=RunSerializer)
    @action(detail=True, methods=["post"], url_path=r"steps/(?P<step_id>\d+)/reject")
    def reject(self, request, pk=None, step_id=None):
        """Refuses the step awaiting approval: it is skipped and the run continues."""
        return self._step(request, pk, step_id, "reject")
