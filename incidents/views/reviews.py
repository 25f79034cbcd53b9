"""Portal pages of post-incident reviews: one page, fields autosaved with htmx."""

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from incidents.charts import bar_chart_svg, line_chart_svg
from incidents.choices import TIME_METRICS, ActionItemKind, ActionItemStatus, ReviewState
from incidents.models import ActionItem, PostIncidentReview
from incidents.models.review import TEXT_FIELDS
from incidents.review_extensions import item_context
from incidents.review_stats import due_context, format_duration, incident_stats
from opsportal.errors import REFUSALS, Conflict, status_of
from opsportal.roles import responder_required

User = get_user_model()

FIELD_LABELS = {
    "summary": ("Summary", "What happened, in a few sentences."),
    "impact": ("Impact", "Who and what was affected, how badly, for how long."),
    "root_cause": ("Root cause", ""),
    "contributing_factors": ("Contributing factors", ""),
    "detection": ("Detection", "How was it noticed? Alert, customer, by chance?"),
    "went_well": ("What went well", ""),
    "went_poorly": ("What went poorly", ""),
    "lucky": ("Where we got lucky", ""),
    "lessons": ("Lessons learned", ""),
}


class ActionItemForm(forms.Form):
    title = forms.CharField(max_length=300)
    kind = forms.ChoiceField(choices=ActionItemKind.choices)
    owner = forms.ModelChoiceField(queryset=User.objects.filter(is_active=True).order_by("username"), required=False)
    due_date = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))


class FieldSaveForm(forms.Form):
    field = forms.ChoiceField(choices=[(f, f) for f in (*TEXT_FIELDS, "customer_facing", "no_action_needed")])
    version = forms.IntegerField(min_value=1)
    value = forms.CharField(required=False, strip=False, max_length=20_000)


def _review(pk: int) -> PostIncidentReview:
    return get_object_or_404(PostIncidentReview.objects.for_api(), pk=pk)


def _page_context(review: PostIncidentReview, **extra) -> dict:
    times = review.times()
    for metric in times.values():
        metric["computed_text"] = format_duration(metric["computed"])
        metric["text"] = format_duration(metric["seconds"])
    return {
        "review": review,
        "incident": review.incident,
        "fields": [(name, *FIELD_LABELS[name], getattr(review, name)) for name in FIELD_LABELS],
        "times": times,
        "key_moments": review.key_moments(),
        "missing": review.missing_for_publish(),
        "reopenings": review.reopenings.select_related("by"),
        **_items_context(review),
        **extra,
    }


def _items_context(review: PostIncidentReview, form: ActionItemForm | None = None) -> dict:
    return {
        "items": review.action_items.select_related("owner").prefetch_related("runbook_drafts__runbook"),
        **item_context(review.incident),
        "item_form": form or ActionItemForm(),
        "item_statuses": ActionItemStatus.choices,
        "today": timezone.localdate(),
    }


@login_required
@require_GET
def review_page(request, pk: int):
    return render(request, "incidents/review.html", _page_context(_review(pk)))


@login_required
@require_GET
def review_print(request, pk: int):
    return render(request, "incidents/review_print.html", _page_context(_review(pk)))


@responder_required
@require_POST
def save_field(request, pk: int):
    """Autosave of one field. A field someone else saved after `version` comes back as a 409 with their text."""
    review = _review(pk)
    form = FieldSaveForm(request.POST)
    if not form.is_valid():
        return render(
            request, "incidents/partials/review_save_status.html", {"error": form.errors.as_text()}, status=400
        )
    field, version, raw = form.cleaned_data["field"], form.cleaned_data["version"], form.cleaned_data["value"]
    value = {"true": True, "false": False, "": None}.get(raw) if field == "customer_facing" else raw
    if field == "no_action_needed":
        value = raw == "true"
    context = {"field": field}
    try:
        review.update(by=request.user, version=version, **{field: value})
    except Conflict as exc:
        context.update(conflict=True, theirs=exc.extra["current"][field], mine=raw, version=exc.extra["version"])
        return render(request, "incidents/partials/review_save_status.html", context, status=status_of(exc))
    except REFUSALS as exc:
        context["error"] = str(exc)
        return render(request, "incidents/partials/review_save_status.html", context, status=status_of(exc))
    context.update(
        version=review.version, saved_at=timezone.localtime(), missing=review.missing_for_publish(), oob_missing=True
    )
    return render(request, "incidents/partials/review_save_status.html", context)


@responder_required
@require_POST
def override_time(request, pk: int):
    review = _review(pk)
    metric = request.POST.get("metric", "")
    minutes = request.POST.get("minutes", "").strip()
    error, status = "", 200
    try:
        override = (
            None if minutes == "" else {"seconds": round(float(minutes) * 60), "reason": request.POST.get("reason", "")}
        )
        review.update(by=request.user, version=review.version, time_overrides={metric: override})
    except REFUSALS as exc:
        error, status = str(exc), status_of(exc)
    except ValueError:
        error, status = "Minutes must be a number.", 400
    review = _review(pk)
    context = _page_context(review, time_error=error)
    return render(request, "incidents/partials/review_times.html", context, status=status)


@responder_required
@require_POST
def change_state(request, pk: int, verb: str):
    review = _review(pk)
    try:
        if verb == "publish":
            review.publish(by=request.user)
        elif verb == "submit":
            review.submit(by=request.user)
        else:
            review.reopen(by=request.user, reason=request.POST.get("reason", ""))
    except REFUSALS as exc:
        context = _page_context(_review(pk), state_error=str(exc))
        return render(request, "incidents/partials/review_state.html", context, status=status_of(exc))
    response = render(request, "incidents/partials/review_state.html", _page_context(_review(pk)))
    response["HX-Refresh"] = "true"  # the page switches between editable and read-only
    return response


def _items_response(request, review, *, form=None, error="", status=200):
    context = {"review": review, **_items_context(review, form), "item_error": error}
    if review.state != ReviewState.PUBLISHED:
        context.update(missing=review.missing_for_publish(), oob_missing=True)
    return render(request, "incidents/partials/review_items.html", context, status=status)


@responder_required
@require_POST
def add_item(request, pk: int):
    review = _review(pk)
    form = ActionItemForm(request.POST)
    if not form.is_valid():
        return _items_response(request, review, form=form, status=400)
    try:
        review.add_action_item(by=request.user, **form.cleaned_data)
    except REFUSALS as exc:
        return _items_response(request, review, form=form, error=str(exc), status=status_of(exc))
    return _items_response(request, review)


@responder_required
@require_POST
def update_item(request, item_id: int):
    item = get_object_or_404(ActionItem.objects.select_related("review"), pk=item_id)
    review = _review(item.review_id)
    changes = {}
    if "status" in request.POST:
        changes = {"status": request.POST["status"], "reason": request.POST.get("reason", "")}
        if changes["status"] not in ActionItemStatus.values:
            return _items_response(request, review, error="Unknown status.", status=400)
    else:
        form = ActionItemForm(request.POST)
        if not form.is_valid():
            return _items_response(request, review, error=form.errors.as_text(), status=400)
        changes = form.cleaned_data
    try:
        item.change(by=request.user, **changes)
    except REFUSALS as exc:
        return _items_response(request, review, error=str(exc), status=status_of(exc))
    return _items_response(request, review)


@login_required
@require_GET
def review_list(request):
    state = request.GET.get("state", "")
    reviews = PostIncidentReview.objects.select_related("incident", "owner").order_by("due_at")
    if state in ReviewState.values:
        reviews = reviews.filter(state=state)
    stats = incident_stats()
    charts = [
        line_chart_svg(f"Time to {metric}, by week", stats["weeks"], series)
        for metric, series in stats["time_to"].items()
    ]
    r, a = stats["reviews"], stats["action_items"]
    charts.append(
        bar_chart_svg(
            "Reviews (last 90 days)",
            [
                ("Published on time", r["published_on_time"], "#1e8449"),
                ("Published late", r["published_late"], "#d68910"),
                ("Overdue, unpublished", r["unpublished_overdue"], "#c0392b"),
                ("Open, in time", r["unpublished_in_time"], "#5d6d7e"),
            ],
        )
    )
    charts.append(
        bar_chart_svg(
            "Action items (last 90 days)",
            [
                ("Open", a["open"], "#2457c5"),
                ("Open, past due", a["open_past_due"], "#c0392b"),
                ("Done", a["done"], "#1e8449"),
                ("Won't do", a["wont_do"], "#5d6d7e"),
            ],
        )
    )
    context = {
        "reviews": reviews[:200],
        "state": state,
        "states": ReviewState.choices,
        "now": timezone.now(),
        "charts": charts,
        "metrics": TIME_METRICS,
        **due_context(),
    }
    return render(request, "incidents/review_list.html", context)
