from django import forms
from django.conf import settings

from incidents.models import Incident, Service
from runbooks.models.run import NOTE_MAX_LENGTH


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": ".md,.markdown,text/markdown,text/plain"}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        files = data if isinstance(data, list | tuple) else [data]
        files = [f for f in files if f]
        if not files:
            raise forms.ValidationError("Choose one or more markdown files.")
        limit = settings.RUNBOOK_IMPORT_MAX_BYTES
        for f in files:
            if f.size > limit:
                raise forms.ValidationError(
                    f"{f.name} is {f.size / 1048576:.1f} MB; runbook documents may be at most {limit / 1048576:.1f} MB."
                )
        return files


class ImportForm(forms.Form):
    files = MultipleFileField(
        label="Markdown documents", help_text="One runbook document per file; headings become runbooks."
    )
    services = forms.ModelMultipleChoiceField(
        queryset=Service.objects.all(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Attach every imported runbook to these services (leave empty to keep what they have).",
    )
    owner = forms.CharField(max_length=120, required=False, help_text="The team that owns these runbooks.")


class StartRunForm(forms.Form):
    incident = forms.ModelChoiceField(
        queryset=Incident.objects.open().order_by("-id"), required=False, empty_label="— no incident —"
    )
    target = forms.ModelChoiceField(
        queryset=Service.objects.all(),
        required=False,
        empty_label="— default —",
        help_text="The service the automated steps connect to.",
    )
    force = forms.BooleanField(required=False, label="Start even if a run is already active for this incident")

    def __init__(self, *args, parameters: list[dict] = (), **kwargs):
        """`parameters`: the runbook's (see `runbook_parameters`), each asked for in a field of its own."""
        super().__init__(*args, **kwargs)
        self.parameters = list(parameters)
        for p in self.parameters:
            if p["default"]:
                hint = "Left empty: the target's base URL."
            elif p["needed"]:
                hint = "Needed to run the automated steps; left empty: the incident's alert label of this name."
            else:
                hint = "Shown in the commands you copy; left empty: the alert label of this name, or as written."
            self.fields[f"param_{p['name']}"] = forms.CharField(
                label=f"{p['name']} ({p['written']}, step {', '.join(map(str, p['steps']))})",
                required=False,
                max_length=200,
                strip=True,
                help_text=hint,
            )

    def params(self) -> dict[str, str]:
        """The values given (blank fields left out): the run checks each and names the one it refuses."""
        return {p["name"]: v for p in self.parameters if (v := self.cleaned_data.get(f"param_{p['name']}"))}


def runbook_parameters(steps) -> list[dict]:
    """The parameters of a version's steps by name: how the first is written, the steps needing it,
    whether an automated step needs it and whether the target's base URL stands for it."""
    found: dict[str, dict] = {}
    for step in steps:
        for p in step.parameters:
            entry = found.setdefault(
                p["name"], {"name": p["name"], "written": p["written"], "steps": [], "needed": False, "default": True}
            )
            if step.order not in entry["steps"]:
                entry["steps"].append(step.order)
            entry["needed"] |= step.is_automated
            entry["default"] &= p.get("default") == "base_url"
    return list(found.values())


class StepActionForm(forms.Form):
    note = forms.CharField(max_length=NOTE_MAX_LENGTH, required=False)
    skip = forms.BooleanField(required=False)
