"""A person's notification rules, edited by that person (or an admin): how and when they are paged.
Plain forms: a change redirects back to the page with a message; invalid input answers 400 with the
page again and the errors beside the form that had them."""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from incidents.alerting.paging import page_test
from incidents.forms import NotificationRuleForm
from incidents.models import NotificationRule
from incidents.models.alerts import portal_base_url
from incidents.models.paging import RULES_MAX
from opsportal.errors import DomainError
from opsportal.roles import is_admin


def _person(request, username: str):
    person = get_object_or_404(get_user_model(), username=username, is_active=True)
    if person.pk != request.user.pk and not is_admin(request.user):
        raise PermissionDenied("Only the person (or an admin) sees and changes their notification rules.")
    return person


def _rules(person) -> list[NotificationRule]:
    return list(NotificationRule.objects.filter(user=person).select_related("endpoint").order_by("delay_minutes", "id"))


def _form_for(rule: NotificationRule, person) -> NotificationRuleForm:
    initial = {"channel": rule.channel, "delay_minutes": rule.delay_minutes}
    if rule.endpoint_id:
        initial |= {"url": rule.endpoint.url, "format": rule.endpoint.format}
    return NotificationRuleForm(initial=initial, person=person, prefix=f"rule-{rule.pk}")


def _render(request, person, *, new_form=None, bound=None, status: int = 200):
    rules = _rules(person)
    forms = [
        (rule, bound if bound is not None and bound.prefix == f"rule-{rule.pk}" else _form_for(rule, person))
        for rule in rules
    ]
    context = {
        "person": person,
        "rule_forms": forms,
        "new_form": new_form or NotificationRuleForm(person=person, prefix="new"),
        "rules_max": RULES_MAX,
        "is_self": person.pk == request.user.pk,
    }
    return render(request, "incidents/schedules/notification_rules.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def notification_rules(request, username: str):
    """GET: the person's rules; POST: add one."""
    person = _person(request, username)
    if request.method == "GET":
        return _render(request, person)
    form = NotificationRuleForm(request.POST, person=person, prefix="new")
    return _save(request, person, form, rule_id=None)


@login_required
@require_POST
def edit_notification_rule(request, username: str, rule_id: int):
    person = _person(request, username)
    get_object_or_404(NotificationRule, pk=rule_id, user=person)
    form = NotificationRuleForm(request.POST, person=person, prefix=f"rule-{rule_id}")
    return _save(request, person, form, rule_id=rule_id)


def _save(request, person, form: NotificationRuleForm, *, rule_id: int | None):
    if form.is_valid():
        data = form.cleaned_data
        try:
            rule = NotificationRule.put(
                person,
                channel=data["channel"],
                delay_minutes=data["delay_minutes"],
                url=data["url"],
                fmt=data["format"],
                rule_id=rule_id,
            )
        except DomainError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Saved: {rule.get_channel_display().lower()} {_after(rule.delay_minutes)}.")
            return redirect("incidents:notification_rules", person.get_username())
    if rule_id is None:
        return _render(request, person, new_form=form, status=400)
    return _render(request, person, bound=form, status=400)


@login_required
@require_POST
def delete_notification_rule(request, username: str, rule_id: int):
    person = _person(request, username)
    rule = get_object_or_404(NotificationRule.objects.select_related("endpoint"), pk=rule_id, user=person)
    rule.remove()
    messages.success(request, f"Deleted: {rule.get_channel_display().lower()} {_after(rule.delay_minutes)}.")
    return redirect("incidents:notification_rules", person.get_username())


@login_required
@require_POST
def test_page(request, username: str):
    """Pages the person by each of their rules at once (delays ignored), to see every channel works."""
    person = _person(request, username)
    link = portal_base_url() + reverse("incidents:notification_rules", args=[person.get_username()])
    pages = page_test(person, link=link)
    if pages:
        channels = ", ".join(sorted({p.get_channel_display().lower() for p in pages}))
        messages.success(request, f"Test page sent ({len(pages)}: {channels}); it arrives within seconds.")
    elif not person.email and not _rules(person):
        messages.error(request, "Nothing can reach you: add a personal webhook rule, or ask an admin for an address.")
    else:
        messages.info(request, "A test page was sent less than a minute ago; wait for it before asking again.")
    return redirect("incidents:notification_rules", person.get_username())


def _after(minutes: int) -> str:
    return "at once" if minutes == 0 else f"after {minutes} min"
