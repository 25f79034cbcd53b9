"""What a runbook version contains, before it is stored: built by the importer or from an API body.

`validate` is the one place that decides whether a runbook may be stored — automated steps name a
registered action whose parameters it accepts (read-only SQL included) — so an import and an API
call refuse the same things with the same messages.
"""

import hashlib
import json
from dataclasses import asdict, dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.text import slugify

from incidents.choices import Severity
from runbooks import parameters
from runbooks.actions import ACTIONS, ParamsError
from runbooks.choices import SAFETY_RANK, Safety, SectionKind, StepKind, strictest
from runbooks.placeholders import declare

MAX_SECTIONS = 300
MAX_STEPS = 500
MAX_TEXT = 20_000
MAX_SECTION_TEXT = 200_000


@dataclass
class SectionSpec:
    title: str
    kind: str = SectionKind.PROCEDURE
    level: int = 2
    body: str = ""


@dataclass
class StepSpec:
    title: str
    section: int = 0
    instructions: str = ""
    command: str = ""
    kind: str = StepKind.MANUAL
    action: str = ""
    params: dict = field(default_factory=dict)
    safety: str = Safety.READ_ONLY
    expected: str = ""
    target_service: str = ""
    timeout: int | None = None
    # The run parameters it needs (see runbooks.parameters); declared from its content when left empty.
    parameters: list[dict] = field(default_factory=list)


@dataclass
class RunbookSpec:
    title: str
    slug: str = ""
    category: str = ""
    alert_names: list[str] = field(default_factory=list)
    severity: str = ""
    owner: str = ""
    services: list[str] = field(default_factory=list)
    sections: list[SectionSpec] = field(default_factory=list)
    steps: list[StepSpec] = field(default_factory=list)
    source: str = ""

    def content(self) -> dict:
        """Everything a version is made of; two specs with equal content are the same version."""
        data = asdict(self)
        data.pop("slug")
        for step in data["steps"]:
            if not step["parameters"]:
                del step["parameters"]  # versions stored before steps had parameters keep their hash
        data["services"] = sorted(set(self.services))
        return data

    def content_hash(self) -> str:
        encoded = json.dumps(self.content(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(encoded.encode()).hexdigest()


def _text(errors: dict, key: str, value, *, required: bool = False, limit: int = MAX_TEXT) -> None:
    if not isinstance(value, str):
        errors[key] = "must be text."
    elif required and not value.strip():
        errors[key] = "is required."
    elif len(value) > limit:
        errors[key] = f"is longer than {limit} characters."


def validate(spec: RunbookSpec) -> RunbookSpec:
    """Checks and normalises `spec` in place; raises ValidationError naming every bad field."""
    errors: dict[str, str] = {}
    _text(errors, "title", spec.title, required=True, limit=200)
    if not spec.slug and isinstance(spec.title, str):
        spec.slug = slugify(spec.title)[:150]
    if spec.slug != slugify(spec.slug) or not spec.slug:
        errors["slug"] = "must be a slug: lower-case letters, digits and hyphens."
    _text(errors, "category", spec.category, limit=200)
    _text(errors, "owner", spec.owner, limit=120)
    if spec.severity not in ("", *Severity.values):
        errors["severity"] = f"must be one of {', '.join(Severity.values)} (or empty)."
    if not isinstance(spec.alert_names, list) or not all(
        isinstance(a, str) and a.strip() and len(a) <= 200 for a in spec.alert_names
    ):
        errors["alert_names"] = "must be a list of alert names."
    else:
        spec.alert_names = list(dict.fromkeys(a.strip() for a in spec.alert_names))
    if not spec.sections and spec.steps:
        spec.sections = [SectionSpec(title=spec.title or "Steps")]
    if len(spec.sections) > MAX_SECTIONS:
        errors["sections"] = f"at most {MAX_SECTIONS} sections."
    for n, section in enumerate(spec.sections):
        _text(errors, f"sections[{n}].title", section.title, limit=300)
        _text(errors, f"sections[{n}].body", section.body, limit=MAX_SECTION_TEXT)
        if section.kind not in SectionKind.values:
            errors[f"sections[{n}].kind"] = f"must be one of {', '.join(SectionKind.values)}."
        if not isinstance(section.level, int) or not 1 <= section.level <= 8:
            errors[f"sections[{n}].level"] = "must be between 1 and 8."
    if len(spec.steps) > MAX_STEPS:
        errors["steps"] = f"at most {MAX_STEPS} steps per runbook."
    for n, step in enumerate(spec.steps):
        _validate_step(errors, f"steps[{n}]", step, len(spec.sections))
    if errors:
        raise ValidationError({key: [message] for key, message in errors.items()})
    return spec


def _validate_step(errors: dict, key: str, step: StepSpec, section_count: int) -> None:
    _text(errors, f"{key}.title", step.title, required=True, limit=300)
    _text(errors, f"{key}.instructions", step.instructions)
    _text(errors, f"{key}.command", step.command)
    _text(errors, f"{key}.expected", step.expected, limit=2000)
    if not isinstance(step.section, int) or not 0 <= step.section < max(section_count, 1):
        errors[f"{key}.section"] = f"must be the index of one of the {section_count} sections."
    if step.safety not in SAFETY_RANK:
        errors[f"{key}.safety"] = f"must be one of {', '.join(Safety.values)}."
    if step.timeout is not None and (
        not isinstance(step.timeout, int) or not 1 <= step.timeout <= settings.RUNBOOK_STEP_TIMEOUT_MAX
    ):
        errors[f"{key}.timeout"] = f"must be between 1 and {settings.RUNBOOK_STEP_TIMEOUT_MAX} seconds."
    if not isinstance(step.params, dict):
        errors[f"{key}.params"] = "must be an object."
        return
    if not step.parameters and isinstance(step.command, str):
        step.parameters = declare(
            automated=step.kind == StepKind.AUTOMATED, action=step.action, params=step.params, command=step.command
        )
    problem = _parameters_problem(step)
    if problem:
        errors[f"{key}.parameters"] = problem
        return
    if step.kind == StepKind.MANUAL:
        if step.action:
            errors[f"{key}.action"] = "manual steps have no action; use kind automated."
        return
    if step.kind != StepKind.AUTOMATED:
        errors[f"{key}.kind"] = "must be manual or automated."
        return
    action = ACTIONS.get(step.action)
    if action is None:
        errors[f"{key}.action"] = f"unknown action {step.action!r}; expected one of: {', '.join(sorted(ACTIONS))}."
        return
    try:
        if step.parameters:
            # Stored as written, blanks included; it must be acceptable whatever safe value fills them.
            sample = {p["name"]: parameters.SAMPLE[p["context"]] for p in step.parameters}
            checked = action.validate(parameters.fill(step.params, step.parameters, sample))
            blanks = {p["field"]: step.params[p["field"]] for p in step.parameters if p["field"] in step.params}
            step.params = {**checked, **blanks}
        else:
            step.params = action.validate(step.params)
    except ParamsError as exc:
        errors[f"{key}.params"] = str(exc)
        return
    if step.safety in SAFETY_RANK:
        step.safety = strictest(step.safety, action.safety_of(step.params))


def _parameters_problem(step: StepSpec) -> str:
    if not isinstance(step.parameters, list) or len(step.parameters) > 50:
        return "must be a list of up to 50 parameters."
    for p in step.parameters:
        if not isinstance(p, dict) or set(p) - {"name", "written", "field", "context", "default"}:
            return "each parameter has name, written, field, context and optionally default."
        if not isinstance(p.get("name"), str) or not parameters.NAME.match(p["name"]):
            return "a parameter name is lower-case letters, digits and underscores, starting with a letter."
        if p.get("context") not in parameters.CONTEXTS or p.get("default", "base_url") != "base_url":
            return f"context must be one of {', '.join(sorted(parameters.CONTEXTS))}; default can only be base_url."
        text = step.command if p.get("field") == "command" else step.params.get(p.get("field"))
        if not isinstance(p.get("written"), str) or not p["written"] or not isinstance(text, str):
            return f"parameter {p['name']} must say what it fills (field) and how it is written there."
        if p["written"] not in text:
            return f"parameter {p['name']}: {p['written']!r} is not in {p['field']}."
    return ""
