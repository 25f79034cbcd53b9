"""The ops API (admin only; session + CSRF or token): the seeds' /api/ops/* paths, each the same
action a runbook step runs, audited the same way."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from incidents.models import Service
from ops import approvals
from ops.api.serializers import (
    ActionRequestPageSerializer,
    ActionRequestSerializer,
    AskBody,
    CacheStatsSerializer,
    DecisionBody,
    DryRunBody,
    FailedTaskSerializer,
    IdsBody,
    InvalidateBody,
    LastRetentionSerializer,
    MaintenanceBody,
    MaintenanceStateSerializer,
    OpsResultSerializer,
    QueueBody,
    RetentionRunSerializer,
    TasksSerializer,
)
from ops.audit import perform
from ops.choices import RequestState
from ops.models import ActionRequest, FailedTask, MaintenanceSwitch, RetentionRun
from ops.stats import cache_stats, pending_tasks
from opsportal.api import Pagination
from opsportal.errors import BadParameters
from opsportal.roles import IsAdmin


def _answer(check, *, code: int = status.HTTP_200_OK) -> Response:
    return Response({"detail": check.summary, "result": check.as_json()}, status=code)


class OpsView(APIView):
    permission_classes = [IsAdmin]
    action_name = ""
    body = DryRunBody

    def act(self, request, params: dict, *, incident=None, service=None) -> Response:
        """Runs the action on the portal (or `service`); why it did not run is answered by the
        API's exception handler (opsportal.errors: bad parameters 400, refused 409, unreachable
        503, too slow 504)."""
        check = perform(self.action_name, params, by=request.user, via="api", incident=incident, service=service)
        return _answer(check)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "post" in cls.__dict__ or cls.action_name in ("queue_stats",):
            return

        # A function of its own per view: extend_schema annotates the function it is given.
        def post(self, request):
            return OpsView.post(self, request)

        cls.post = extend_schema(request=cls.body, responses={200: OpsResultSerializer})(post)

    def validated(self, request) -> tuple[dict, dict]:
        """The action's parameters, and where it acts (incident, service), from a valid body."""
        body = self.body(data=request.data)
        body.is_valid(raise_exception=True)
        params = {k: v for k, v in body.validated_data.items() if v is not None}
        return params, {"incident": params.pop("incident", None), "service": params.pop("service", None)}

    def post(self, request):
        params, where = self.validated(request)
        return self.act(request, params, **where)


class PauseJobsView(OpsView):
    """POST /api/ops/jobs/pause: every worker stops consuming the queue (all the portal's queues if none given)."""

    action_name, body = "queue_pause", QueueBody


class ResumeJobsView(OpsView):
    action_name, body = "queue_resume", QueueBody


class QueuesView(OpsView):
    action_name = "queue_stats"
    http_method_names = ["get", "head", "options"]

    @extend_schema(
        parameters=[
            OpenApiParameter("service", description="A service's slug: its broker instead of the portal's."),
            OpenApiParameter("queue", description="One queue (needed for a service: its queues are not known)."),
        ],
        responses={200: OpsResultSerializer},
    )
    def get(self, request):
        slug = request.query_params.get("service")
        service = Service.objects.filter(slug=slug).first() if slug else None
        if slug and service is None:
            raise BadParameters(f"No service {slug!r}.")
        queue = request.query_params.get("queue")
        return self.act(request, {"queue": queue} if queue else {}, service=service)


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
            return Response({"status": "pending", "tasks": pending_tasks()})  # broker unreachable: 503
        raise BadParameters("status must be failed or pending.")


class RequeueTasksView(OpsView):
    """POST /api/ops/tasks/requeue {"ids": [...]}: all the listed failed tasks run again, or none."""

    action_name, body = "retry_failed", IdsBody


class InvalidateCacheView(OpsView):
    """By tags or pattern at once; a pattern matching every key (with "dangerous": true) becomes a
    request that waits for another admin's approval (202)."""

    action_name, body = "cache_invalidate", InvalidateBody

    @extend_schema(request=InvalidateBody, responses={200: OpsResultSerializer, 202: ActionRequestSerializer})
    def post(self, request):
        params, where = self.validated(request)
        reason = params.pop("reason", "")
        if not params.get("dangerous"):
            params.pop("dangerous")
            return self.act(request, params, **where)
        if params.pop("dry_run"):
            return self.act(request, {**params, "dry_run": True}, **where)
        return ask_for(request, "cache_invalidate", params, reason=reason, **where)


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


def ask_for(request, action: str, params: dict, *, reason: str, incident=None, service=None) -> Response:
    """Records a dangerous action for approval (202), or says why not (the exception handler: 4xx;
    503 when the dry run cannot reach what it would act on). Nothing is stored when it is refused."""
    asked = approvals.ask(action, params, by=request.user, reason=reason, via="api", incident=incident, service=service)
    body = ActionRequestSerializer(asked).data
    body["detail"] = asked.waiting_message
    return Response(body, status=status.HTTP_202_ACCEPTED)


class ActionRequestsView(APIView):
    """GET /api/ops/requests[?state=pending]: dangerous actions asked for, newest first.
    POST: ask for one ({"action", "params", "reason", "incident"?}); another admin approves it."""

    permission_classes = [IsAdmin]

    @extend_schema(
        parameters=[
            OpenApiParameter("state", enum=list(RequestState.values)),
            OpenApiParameter("page", int, description="A page number within the paginated result set."),
            OpenApiParameter("page_size", int, description="Number of results to return per page."),
        ],
        responses={200: ActionRequestPageSerializer},
        operation_id="ops_requests_list",
    )
    def get(self, request):
        ActionRequest.objects.expire_stale()
        rows = ActionRequest.objects.select_related("requested_by", "decided_by", "service")
        wanted = request.query_params.get("state")
        if wanted:
            if wanted not in RequestState.values:
                raise BadParameters(f"state must be one of {', '.join(RequestState.values)}.")
            rows = rows.filter(state=wanted)
        paginator = Pagination()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(ActionRequestSerializer(page, many=True).data)

    @extend_schema(request=AskBody, responses={202: ActionRequestSerializer})
    def post(self, request):
        body = AskBody(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        return ask_for(
            request, data["action"], data["params"], reason=data["reason"], incident=data.get("incident"),
            service=data.get("service"),
        )  # fmt: skip


class ActionRequestView(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(responses={200: ActionRequestSerializer})
    def get(self, request, pk: int):
        ActionRequest.objects.filter(pk=pk).expire_stale()
        row = ActionRequest.objects.select_related("requested_by", "decided_by", "service").filter(pk=pk).first()
        if row is None:
            return Response({"detail": f"No action request with id {pk}."}, status=status.HTTP_404_NOT_FOUND)
        return Response(ActionRequestSerializer(row).data)


class DecideView(APIView):
    """POST /api/ops/requests/{id}/approve (another admin; 202, a worker runs it) or /reject (the
    requester withdraws it, anyone else refuses it)."""

    permission_classes = [IsAdmin]
    decide = None

    @extend_schema(request=DecisionBody, responses={200: ActionRequestSerializer, 202: ActionRequestSerializer})
    def post(self, request, pk: int):
        if not ActionRequest.objects.filter(pk=pk).exists():
            return Response({"detail": f"No action request with id {pk}."}, status=status.HTTP_404_NOT_FOUND)
        body = DecisionBody(data=request.data)
        body.is_valid(raise_exception=True)
        decided = type(self).decide(pk, by=request.user, note=body.validated_data["note"])
        code = status.HTTP_202_ACCEPTED if decided.state == RequestState.APPROVED else status.HTTP_200_OK
        return Response(ActionRequestSerializer(decided).data, status=code)


class ApproveView(DecideView):
    decide = staticmethod(approvals.approve)


class RejectView(DecideView):
    decide = staticmethod(approvals.reject)
