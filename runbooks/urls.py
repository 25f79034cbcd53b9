from django.urls import path, re_path

from runbooks.views import drafts as draft_views
from runbooks.views import runbooks as views

app_name = "runbooks"

urlpatterns = [
    path("", views.runbook_list, name="list"),
    path("import/", views.import_runbooks, name="import"),
    path("<int:pk>/", views.runbook_detail, name="detail"),
    path("drafts/<int:pk>/", draft_views.draft_page, name="draft"),
    path("drafts/from-action-item/<int:item_id>/", draft_views.open_draft, name="open_draft"),
    path("<int:pk>/run/", views.start_run, name="start_run"),
    path("runs/<int:pk>/", views.run_detail, name="run"),
    path("runs/<int:pk>/live/", views.run_live, name="run_live"),
    path("runs/<int:pk>/cancel/", views.cancel_run, name="cancel_run"),
    re_path(
        r"^runs/(?P<pk>\d+)/steps/(?P<step_id>\d+)/(?P<verb>complete|approve|reject)/$",
        views.step_action,
        name="step_action",
    ),
    path("for-incident/<int:incident_pk>/", views.incident_card, name="incident_card"),
]
