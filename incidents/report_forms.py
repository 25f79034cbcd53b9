from django import forms

from incidents.choices import Severity
from incidents.models import Incident, Service
from incidents.reports import REPORT_DESCRIPTION_MAX

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
