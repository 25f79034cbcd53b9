"""The beat schedule in the admin: django-celery-beat's pages, for admins only (imported by
ops/admin.py).

A periodic task names any Celery task with any arguments, so whoever can edit one can make the
workers run anything. The package's pages are registered again here with the portal's admin
role required on top of Django's model permissions: a staff user who is not an admin is refused
even if someone granted them the package's permissions.
"""

from django.contrib import admin
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule

from opsportal.admin import AdminRoleRequired


class PeriodicTaskAdmin(AdminRoleRequired, beat_admin.PeriodicTaskAdmin):
    # The package's form template adds an inline script (to show the chosen crontab in words),
    # which the portal's CSP refuses; the plain form shows the same words as a read-only row.
    change_form_template = None
    list_display = ("name", "enabled", "scheduler", "task", "last_run_at")
    ordering = ("name",)


class IntervalScheduleAdmin(AdminRoleRequired, beat_admin.IntervalScheduleAdmin):
    pass


class CrontabScheduleAdmin(AdminRoleRequired, beat_admin.CrontabScheduleAdmin):
    pass


class SolarScheduleAdmin(AdminRoleRequired, beat_admin.SolarScheduleAdmin):
    pass


class ClockedScheduleAdmin(AdminRoleRequired, beat_admin.ClockedScheduleAdmin):
    pass


for _model, _model_admin in (
    (PeriodicTask, PeriodicTaskAdmin),
    (IntervalSchedule, IntervalScheduleAdmin),
    (CrontabSchedule, CrontabScheduleAdmin),
    (SolarSchedule, SolarScheduleAdmin),
    (ClockedSchedule, ClockedScheduleAdmin),
):
    admin.site.unregister(_model)
    admin.site.register(_model, _model_admin)
