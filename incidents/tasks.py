import logging

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone

from incidents.models import PostIncidentReview

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def mark_overdue_reviews() -> int:
    """Beat job: stamp each overdue review once, note it on the incident and e-mail its owner."""
    now = timezone.now()
    notified = 0
    for review_id in (
        PostIncidentReview.objects.overdue(now).filter(overdue_notified_at__isnull=True).values_list("pk", flat=True)
    ):
        review = PostIncidentReview.objects.select_related("incident", "owner").get(pk=review_id)
        if not review.mark_overdue(now=now):
            continue
        notified += 1
        owner = review.owner
        if owner is not None and owner.email:
            send_mail(
                subject=f"[Ops Portal] Review of {review.incident.reference} is overdue",
                message=(
                    f"The post-incident review of {review.incident.reference} “{review.incident.title}” "
                    f"was due {timezone.localtime(review.due_at):%Y-%m-%d %H:%M %Z}.\n\n"
                    f"{settings.PORTAL_BASE_URL}/reviews/{review.pk}/\n"
                ),
                from_email=None,
                recipient_list=[owner.email],
                fail_silently=False,
            )
        else:
            logger.warning("overdue review %s has no owner e-mail to notify", review.pk)
    return notified
