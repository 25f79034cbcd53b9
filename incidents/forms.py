from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model

from incidents.choices import EventKind, Severity
from incidents.models import Incident, Service

User = get_user_model()
MANUAL_KINDS = [c for c in EventKind.choices if c[0] != EventKind.STATUS_CHANGE]


class LocalDateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m-%dT%H:%M", **kwargs)


def _user_choice() -> forms.ModelChoiceField:
    return forms.ModelChoiceField(
        queryset=User.objects.filter(is_active=True).order_by("username"), required=False, empty_label="— unassigned —"
    )


class DeclareIncidentForm(forms.ModelForm):
    services = forms.ModelMultipleChoiceField(
        queryset=Service.objects.all(), required=False, widget=forms.CheckboxSelectMultiple
    )
    started_at = forms.DateTimeField(
        required=False, widget=LocalDateTimeInput(), help_text="When the impact began; leave empty for now."
    )
    commander = _user_choice()

    class Meta:
        model = Incident
        fields = ["title", "severity", "summary", "services", "commander", "started_at"]
        widgets = {"summary": forms.Textarea(attrs={"rows": 4})}


class IncidentDetailsForm(forms.Form):
    severity = forms.ChoiceField(choices=Severity.choices)
    commander = _user_choice()
    scribe = _user_choice()
    communications_lead = _user_choice()
    services = forms.ModelMultipleChoiceField(
        queryset=Service.objects.all(), required=False, widget=forms.CheckboxSelectMultiple
    )
    started_at = forms.DateTimeField(widget=LocalDateTimeInput())


class TransitionForm(forms.Form):
    to = forms.CharField()
    note = forms.CharField(required=False, max_length=2000)


class TimelineEntryForm(forms.Form):
    body = forms.CharField(
        max_length=settings.TIMELINE_BODY_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "What happened? Markdown works."}),
    )
    kind = forms.ChoiceField(choices=MANUAL_KINDS, initial=EventKind.NOTE)
    occurred_at = forms.DateTimeField(required=False, widget=LocalDateTimeInput(), help_text="Defaults to now.")
    pinned = forms.BooleanField(required=False)


class TimelineEditForm(forms.Form):
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    body = forms.CharField(max_length=settings.TIMELINE_BODY_MAX_LENGTH, widget=forms.Textarea(attrs={"rows": 4}))
    kind = forms.ChoiceField(choices=MANUAL_KINDS)
    occurred_at = forms.DateTimeField(widget=LocalDateTimeInput())


class AnnotationForm(forms.Form):
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    annotation = forms.CharField(
        required=False, max_length=settings.TIMELINE_BODY_MAX_LENGTH, widget=forms.Textarea(attrs={"rows": 2})
    )
