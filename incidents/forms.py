from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.validators import URLValidator

from incidents.choices import EventKind, PageChannel, Severity
from incidents.models import Incident, Service
from incidents.models.paging import DELAY_MAX_MINUTES
from incidents.models.report import REPORT_DESCRIPTION_MAX
from incidents.notifications.registry import webhook_format_choices

User = get_user_model()
MANUAL_KINDS = [c for c in EventKind.choices if c[0] != EventKind.STATUS_CHANGE]


class LocalDateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m-%dT%H:%M", **kwargs)


class LocalSecondsInput(forms.DateTimeInput):
    """A datetime-local box that shows and keeps seconds (timeline entries sort to the second)."""

    input_type = "datetime-local"

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m-%dT%H:%M:%S", attrs={"step": "1"}, **kwargs)


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
    occurred_at = forms.DateTimeField(
        required=False,
        widget=LocalSecondsInput(),
        label="Occurred at",
        help_text="Leave empty for the moment you add it (to the second).",
    )
    pinned = forms.BooleanField(required=False)


class TimelineEditForm(forms.Form):
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    body = forms.CharField(max_length=settings.TIMELINE_BODY_MAX_LENGTH, widget=forms.Textarea(attrs={"rows": 4}))
    kind = forms.ChoiceField(choices=MANUAL_KINDS)
    occurred_at = forms.DateTimeField(widget=LocalSecondsInput())


class AnnotationForm(forms.Form):
    annotation_version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    annotation = forms.CharField(
        required=False, max_length=settings.TIMELINE_BODY_MAX_LENGTH, widget=forms.Textarea(attrs={"rows": 2})
    )


# Problem reports from the status page, their triage, and publishing an incident on the status page.
HONEYPOT_ERROR = "Your report could not be accepted."


class ProblemReportForm(forms.Form):
    name = forms.CharField(max_length=120, widget=forms.TextInput(attrs={"autocomplete": "name"}))
    email = forms.EmailField(
        max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"}), help_text="Only to reply to you."
    )
    service = forms.ModelChoiceField(
        queryset=Service.objects.filter(public=True), required=False, empty_label="Not sure", label="Affected service"
    )
    description = forms.CharField(
        min_length=10,
        max_length=REPORT_DESCRIPTION_MAX,
        widget=forms.Textarea(attrs={"rows": 5, "placeholder": "What did you try, what happened, since when?"}),
        label="What is wrong?",
    )
    # A trap for bots: hidden from people (CSS and aria-hidden), so a value means a script filled it.
    website = forms.CharField(required=False, label="Leave this empty")

    def clean_website(self):
        if self.cleaned_data.get("website"):
            raise forms.ValidationError(HONEYPOT_ERROR)
        return ""

    @property
    def honeypot_filled(self) -> bool:
        return "website" in self.errors


class EscalateReportForm(forms.Form):
    incident = forms.ModelChoiceField(
        queryset=Incident.objects.open(), required=False, empty_label="— a new incident —", label="Into"
    )
    title = forms.CharField(max_length=200, required=False, help_text="For a new incident.")
    severity = forms.ChoiceField(choices=Severity.choices, initial=Severity.SEV3)


class DismissReportForm(forms.Form):
    reason = forms.CharField(max_length=500, required=False)


class PublishForm(forms.Form):
    public = forms.BooleanField(required=False)
    public_title = forms.CharField(
        required=False,
        max_length=200,
        label="Public title",
        help_text="What customers read. Not the internal title: no hostnames, thresholds or alert text.",
    )
    public_message = forms.CharField(
        required=False,
        max_length=2000,
        label="Public message",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "We are investigating reports of failed checkouts."}),
        help_text="Shown under the title. Later updates are the Communication entries of the timeline.",
    )


class ScheduleImportForm(forms.Form):
    file = forms.FileField(help_text="An .ics export of another paging tool (at most 1 MiB).")
    mode = forms.ChoiceField(
        choices=[
            ("overrides", "Overrides: each event puts its person on call for its period"),
            ("rotation", "Rotation: a new top layer repeating the events' order, shift length and handoff"),
        ],
        initial="overrides",
    )


class NotificationRuleForm(forms.Form):
    """A person's notification rule: a channel and a delay. A webhook rule names its URL (a chat or
    push service's incoming webhook), sent signed like every webhook, in a chosen format."""

    channel = forms.ChoiceField(
        choices=[(PageChannel.EMAIL, "E-mail"), (PageChannel.WEBHOOK, "Personal webhook")], initial=PageChannel.EMAIL
    )
    delay_minutes = forms.IntegerField(
        label="Delay (minutes)",
        min_value=0,
        max_value=DELAY_MAX_MINUTES,
        initial=0,
        error_messages={
            "min_value": "The delay is 0 (at once) or more minutes.",
            "max_value": f"The delay is at most {DELAY_MAX_MINUTES} minutes (a day).",
            "invalid": "The delay is a whole number of minutes.",
            "required": "Say after how many minutes (0: at once).",
        },
    )
    url = forms.URLField(
        label="Webhook URL",
        required=False,
        max_length=2000,
        assume_scheme="https",
        validators=[URLValidator(schemes=["http", "https"])],
        error_messages={"invalid": "The webhook URL must be a full http:// or https:// address."},
    )
    format = forms.ChoiceField(label="Format", choices=webhook_format_choices, initial="json", required=False)

    def __init__(self, *args, person=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.person = person

    def clean(self):
        data = super().clean()
        if data.get("channel") == PageChannel.WEBHOOK:
            if not data.get("url") and "url" not in self.errors:
                self.add_error("url", "A personal webhook rule needs the webhook's URL.")
            data["format"] = data.get("format") or "json"
        else:
            data["url"] = ""
            if self.person is not None and not self.person.email:
                self.add_error(
                    "channel", "You have no e-mail address on file: use a personal webhook, or ask an admin."
                )
        return data
