"""Notification e-mails that could not be queued.

A notification e-mail (a status change to the people paged, an escalation's e-mail contacts) is
queued after the change commits, with its subject, body and recipients as the task's arguments: it
has no row of its own. When the broker does not answer that publish, the e-mail is kept here and
the escalation sweep (incidents.tasks.run_escalations) queues it once the broker answers again,
so a broker outage neither holds the request that made the change nor loses the e-mail.
"""

from django.db import models
from django.utils import timezone

from incidents.models.incident import Incident
from incidents.notifications.registry import EVENT_MAX_LENGTH


class UnqueuedEmail(models.Model):
    incident = models.ForeignKey(Incident, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    event = models.CharField(max_length=EVENT_MAX_LENGTH, blank=True)
    subject = models.TextField()
    body = models.TextField()
    recipients = models.JSONField(help_text="The e-mail addresses, as the task takes them.")
    created_at = models.DateTimeField(default=timezone.now)
    error = models.CharField(max_length=500, blank=True, help_text="Why the publish failed.")

    class Meta:
        ordering = ["id"]
        verbose_name = "unqueued notification e-mail"

    def __str__(self) -> str:
        return f"{self.event or 'e-mail'} to {len(self.recipients)} recipient(s) ({self.created_at:%Y-%m-%d %H:%M})"
