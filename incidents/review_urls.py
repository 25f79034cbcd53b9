from django.urls import path

from incidents import review_views as views

app_name = "reviews"

urlpatterns = [
    path("", views.review_list, name="list"),
    path("<int:pk>/", views.review_page, name="detail"),
    path("<int:pk>/print/", views.review_print, name="print"),
    path("<int:pk>/save/", views.save_field, name="save_field"),
    path("<int:pk>/times/", views.override_time, name="override_time"),
    path("<int:pk>/action-items/", views.add_item, name="add_item"),
    path("<int:pk>/submit/", views.change_state, {"verb": "submit"}, name="submit"),
    path("<int:pk>/publish/", views.change_state, {"verb": "publish"}, name="publish"),
    path("<int:pk>/reopen/", views.change_state, {"verb": "reopen"}, name="reopen"),
    path("action-items/<int:item_id>/", views.update_item, name="update_item"),
]
