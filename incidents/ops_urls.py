from django.urls import path

from incidents import ops_views

app_name = "ops"

urlpatterns = [
    path("integrations/", ops_views.integrations, name="integrations"),
    path("integrations/<int:pk>/rotate/", ops_views.rotate_token, name="rotate_token"),
    path("webhooks/", ops_views.webhooks, name="webhooks"),
    path("webhooks/deliveries/<int:pk>/redeliver/", ops_views.redeliver, name="redeliver"),
]
