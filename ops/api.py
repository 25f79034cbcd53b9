"""The ops API (admin only; session + CSRF or token): the seeds' /api/ops/* paths, each the same
action a runbook step runs, audited the same way."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from ops.audit import perform
from ops.models import FailedTask, MaintenanceSwitch, RetentionRun
from ops.stats import cache_stats, pending_tasks
from opsportal.roles import IsAdmin
from runbooks.actions import ActionError, ParamsError, StepTimeout, TransientError
from runbooks.actions.cache import matches_everything


class FailedTaskSerializer(serializers.ModelSerializer):
    reason = serializers.CharField(source="exception")

    class Meta:
        model = FailedTask
        fields = ["id", "task_id", "name", "queue", "args", "kwargs", "reason", "failed_at"]


class RetentionRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = RetentionRun
        fields = ["id", "started_at", "duration_ms", "retention_days", "dry_run", "counts"]


class QueueBody(serializers.Serializer):
    queue = serializers.CharField(required=False, max_length=100)
    dry_run = serializers.BooleanField(default=False)


class IdsBody(serializers.Serializer):
    ids = serializers.ListField(child=serializers.IntegerField(min_value=1), allow_empty=False, max_length=1000)
    dry_run = serializers.BooleanField(default=False)


class InvalidateBody(serializers.Serializer):
    tags = serializers.ListField(child=serializers.CharField(max_length=100), required=False, allow_empty=False)
    pattern = serializers.CharField(required=False, max_length=200)
    dry_run = serializers.BooleanField(default=False)

    def validate(self, data):
        if ("tags" in data) == ("pattern" in data):
            raise serializers.ValidationError("Give either tags (a non-empty list) or pattern.")
        if "pattern" in data and matches_everything(data["pattern"]):
            raise serializers.ValidationError(
                f"The pattern {data['pattern']!r} matches every key. A flush is a dangerous action that needs "
                "another person's approval: run it as a runbook step (cache_invalidate with dangerous: true)."
            )
        return data


class MaintenanceBody(serializers.Serializer):
    enabled = serializers.BooleanField()
    message = serializers.CharField(required=False, allow_blank=True, max_length=300)
    dry_run = serializers.BooleanField(default=False)


class DryRunBody(serializers.Serializer):
    dry_run = serializers.BooleanField(default=False)


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


def _answer(check, *, code: int = status.HTTP_200_OK) -> Response:
    return Response({"detail": check.summary, "result": check.as_json()}, status=code)


class OpsView(APIView):
    permission_classes = [IsAdmin]
    action_name = ""
    body = DryRunBody

    def act(self, request, params: dict) -> Response:
        """Runs the action on the portal; its refusals become 4xx, an unreachable service 503."""
        try:
            check = perform(self.action_name, params, by=request.user, via="api")
        except ParamsError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        except TransientError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        except StepTimeout as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_504_GATEWAY_TIMEOUT)
        except ActionError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return _answer(check)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "post" in cls.__dict__ or cls.action_name in ("queue_stats",):
            return

        # A function of its own per view: extend_schema annotates the function it is given.
        def post(self, request):
            return OpsView.post(self, request)

        cls.post = extend_schema(request=cls.body, responses={200: OpsResultSerializer})(post)

    def post(self, request):
        body = self.body(data=request.data)
        body.is_valid(raise_exception=True)
        return self.act(request, {k: v for k, v in body.validated_data.items() if v is not None})


class PauseJobsView(OpsView):
    """POST /api/ops/jobs/pause: every worker stops consuming the queue (all the portal's queues if none given)."""

    action_name, body = "queue_pause", QueueBody


class ResumeJobsView(OpsView):
    action_name, body = "queue_resume", QueueBody


class QueuesView(OpsView):
    action_name = "queue_stats"
    http_method_names = ["get", "head", "options"]

    @extend_schema(responses={200: OpsResultSerializer})
    def get(self, request):
        return self.act(request, {})


class TasksView(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(
        parameters=[OpenApiParameter("status", enum=["failed", "pending"], default="failed")],
        responses={200: TasksSerializer},
    )
    def get(self, request):
        wanted = request.query_params.get("status", "failed")
        if wanted == "failed":
            rows = FailedTask.objects.waiting()[:200]
            return Response({"status": "failed", "tasks": FailedTaskSerializer(rows, many=True).data})
        if wanted == "pending":
            try:
                tasks = pending_tasks()
            except TransientError as exc:
                return Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
            return Response({"status": "pending", "tasks": tasks})
        return Response({"detail": "status must be failed or pending."}, status=status.HTTP_400_BAD_REQUEST)


class RequeueTasksView(OpsView):
    """POST /api/ops/tasks/requeue {"ids": [...]}: all the listed failed tasks run again, or none."""

    action_name, body = "retry_failed", IdsBody


class InvalidateCacheView(OpsView):
    action_name, body = "cache_invalidate", InvalidateBody


class CacheStatsView(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(responses={200: CacheStatsSerializer})
    def get(self, request):
        return Response(cache_stats())


class RetentionRunView(OpsView):
    action_name = "retention_run"

    @extend_schema(responses={200: LastRetentionSerializer})
    def get(self, request):
        last = RetentionRun.objects.filter(dry_run=False).first()
        return Response({"last_run": RetentionRunSerializer(last).data if last else None})


class MaintenanceView(OpsView):
    action_name, body = "maintenance_mode", MaintenanceBody

    @extend_schema(responses={200: MaintenanceStateSerializer})
    def get(self, request):
        switch = MaintenanceSwitch.current()
        return Response({"enabled": switch.enabled, "message": switch.message, "changed_at": switch.changed_at})
