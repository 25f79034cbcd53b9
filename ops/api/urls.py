from django.urls import path

from ops.api import views as api

urlpatterns = [
    path("ops/jobs/pause", api.PauseJobsView.as_view(), name="ops-jobs-pause"),
    path("ops/jobs/resume", api.ResumeJobsView.as_view(), name="ops-jobs-resume"),
    path("ops/queues", api.QueuesView.as_view(), name="ops-queues"),
    path("ops/tasks", api.TasksView.as_view(), name="ops-tasks"),
    path("ops/tasks/requeue", api.RequeueTasksView.as_view(), name="ops-tasks-requeue"),
    path("ops/cache", api.CacheStatsView.as_view(), name="ops-cache"),
    path("ops/cache/invalidate", api.InvalidateCacheView.as_view(), name="ops-cache-invalidate"),
    path("ops/retention/run", api.RetentionRunView.as_view(), name="ops-retention-run"),
    path("ops/maintenance", api.MaintenanceView.as_view(), name="ops-maintenance"),
    path("ops/requests", api.ActionRequestsView.as_view(), name="ops-requests"),
    path("ops/requests/<int:pk>", api.ActionRequestView.as_view(), name="ops-request"),
    path("ops/requests/<int:pk>/approve", api.ApproveView.as_view(), name="ops-request-approve"),
    path("ops/requests/<int:pk>/reject", api.RejectView.as_view(), name="ops-request-reject"),
]
