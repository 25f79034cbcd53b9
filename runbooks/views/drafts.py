"""Runbook drafts opened from a review's `runbook` action item: edit the markdown, publish the next version."""

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from incidents.models import ActionItem
from incidents.review_extensions import add_item_context
from opsportal.errors import REFUSALS, NotAllowed, status_of
from opsportal.roles import is_admin, responder_required
from runbooks.models import Runbook, RunbookDraft
from runbooks.models.draft import MAX_SOURCE


class DraftForm(forms.Form):
    source = forms.CharField(max_length=MAX_SOURCE, strip=False, widget=forms.Textarea(attrs={"rows": 30}))


@add_item_context
def runbooks_used(incident) -> dict:
    """The runbooks run for an incident: the ones a review's action item can open a draft of."""
    return {"runbooks_used": list(Runbook.objects.filter(runs__incident=incident).distinct().order_by("title"))}


@responder_required
@require_POST
def open_draft(request, item_id: int):
    item = get_object_or_404(ActionItem.objects.select_related("review__incident"), pk=item_id)
    raw = request.POST.get("runbook", "")
    runbook = Runbook.objects.filter(pk=int(raw)).first() if raw.isdigit() else None
    if runbook is None:
        return HttpResponse("Choose a runbook used in the incident.", status=400)
    try:
        draft = RunbookDraft.open_for(item, runbook, by=request.user)
    except REFUSALS as exc:
        return HttpResponse(str(exc), status=status_of(exc))
    url = reverse("runbooks:draft", args=[draft.pk])
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


DRAFT_ACTIONS = ("save", "publish", "discard")


@responder_required
def draft_page(request, pk: int):
    draft = get_object_or_404(
        RunbookDraft.objects.select_related("runbook", "base_version", "action_item__review__incident"), pk=pk
    )
    form = DraftForm(request.POST or None, initial={"source": draft.source})
    status, error = 200, ""
    if request.method == "POST":
        action = request.POST.get("action", "save")
        if action not in DRAFT_ACTIONS:
            choices = ", ".join(DRAFT_ACTIONS)
            status, error = 400, f"action: unknown action {action[:40]!r}; use one of {choices}."
        elif action in ("save", "publish") and not form.is_valid():
            status = 400
        else:
            try:
                if action == "discard":
                    draft.discard(by=request.user)
                    messages.info(request, "Draft discarded.")
                    return redirect("runbooks:detail", pk=draft.runbook_id)
                draft.save_source(by=request.user, source=form.cleaned_data["source"])
                if action == "publish":
                    if not is_admin(request.user):
                        raise NotAllowed("Publishing a runbook version needs the admin role; the draft is saved.")
                    version = draft.publish(by=request.user)
                    messages.success(request, f"Published version {version.number} of {draft.runbook.title}.")
                    return redirect("runbooks:detail", pk=draft.runbook_id)
                messages.success(request, "Draft saved.")
                return redirect("runbooks:draft", pk=draft.pk)
            except REFUSALS as exc:
                error, status = str(exc), status_of(exc)
            except ValidationError as exc:
                error, status = "; ".join(exc.messages), 400
    context = {"draft": draft, "form": form, "error": error, "can_publish": is_admin(request.user)}
    return render(request, "runbooks/draft.html", context, status=status)
