"""From markdown-it's syntax tree to runbook specs: headings, labels, lists and code blocks.

The document is read as a tree of headings. Its title heading (a single top heading) holds the
preamble; the headings under it become runbooks, except reference material (overview, contents,
contacts, references, ...) which stays with the document and is shown with each of its runbooks.
A heading that only groups procedures (no text of its own, sub-headings that are not template
sections) yields one runbook per sub-heading. Inside a runbook, sub-headings and label
paragraphs ("**Safe Action**:", "Symptoms") become sections whose kind follows the template;
list items become manual steps and code blocks are cut into steps, automated when recognised.
"""

import re
import textwrap
from dataclasses import dataclass, field

import yaml
from django.utils.text import slugify
from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode
from mdit_py_plugins.front_matter import front_matter_plugin

from incidents.choices import Severity
from runbooks.choices import DESCRIPTIVE_KINDS, Safety, SectionKind, StepKind, strictest
from runbooks.importer.commands import (
    Recognised,
    Unit,
    classify_prose,
    code_units,
    looks_like_command,
    recognise_inline,
)
from runbooks.placeholders import declare
from runbooks.specs import RunbookSpec, SectionSpec, StepSpec

_md = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"]).use(front_matter_plugin)

_KINDS = [
    (
        SectionKind.CONTEXT,
        r"alert context|context|symptoms?|detect(ion)?|trigger|impact|meaning|background|when to use|priority"
        r"|signals?|alert|alert details|description|summary|what is happening|customer impact|business impact",
    ),
    (
        SectionKind.FIRST_LOOK,
        r"first look|immediate actions?|triage|panels to check|first steps|general triage checklist|initial checks"
        r"|quick checks",
    ),
    (
        SectionKind.DIAGNOSTICS,
        r"diagnostic queries|diagnostics?|diagnosis|deep dive|investigat\w*|what to look for|checks"
        r"|verification|verify|validation|post-?checks|confirm recovery|health checks?",
    ),
    (SectionKind.HYPOTHESES, r"(common )?hypothes[ie]s\b.*|possible causes|root causes?"),
    (
        SectionKind.SAFE_ACTIONS,
        r"safe actions?|mitigations?|solutions?|recovery|remediation|resolution|fix(es)?|actions?|workarounds?"
        r"|containment|contain|rollback|roll ?back|recovery steps|resolve",
    ),
    (SectionKind.UNSAFE_ACTIONS, r"not safe|unsafe( actions?)?|dangerous( actions?)?|do not|don'?t"),
    (SectionKind.ESCALATION, r"(when to )?escalat\w*\b.*|on-?call|who to page|contacts? for escalation"),
    (SectionKind.EXPECTED, r"expected results?|expected outputs?"),
    (SectionKind.PROCEDURE, r"steps|procedure|tasks|checklist|how to"),
]
_KIND_PATTERNS = [(kind, re.compile(rf"^(?:{pattern})$")) for kind, pattern in _KINDS]
_REFERENCE = re.compile(
    r"^(overview|introduction|about|table of contents|contents|references?|appendix|see also|links|glossary"
    r"|document information|changelog|revision history|runbook template|template|service overview"
    r"|dashboards? (&|and) metrics|environment (variables|toggles)|configuration|.*\bcontacts?\b.*)$"
)
_NUMBERING = re.compile(r"^(?:runbook\s+\d+\s*[:.)\-\u2013]?|\d+(?:\.\d+)+\.?|\d+[.)]|\d+:)\s+", re.I)
_CHECKBOX = re.compile(r"^\[[ xX]\]\s+")
_LIST_MARKER = re.compile(r"^(\s*)([-*+]|\d+[.)])(\s+)")
_METADATA_LABELS = {
    "service", "services", "team", "owner", "component", "runbook owner", "last updated", "updated", "dashboard",
    "dashboards", "source", "threshold", "metric", "expression", "query", "for", "labels", "on-call", "escalation",
    "impact", "summary", "environment", "cluster", "namespace", "slo", "tier",
}  # fmt: skip
_STOPWORDS = {"check", "the", "a", "an", "of", "for", "and", "to", "in", "on", "is", "are", "with", "all"}
_CAMEL_ALERT = re.compile(r"^[A-Z][a-z0-9]+(?:[A-Z0-9][A-Za-z0-9]*)+$")
# `Alert: PoolExhaustion` or `## Alert - PoolExhaustion (critical)`: an alert named in a heading.
_HEADING_ALERT = re.compile(
    r"^(?:alert(?:\s*name)?\s*[:\-\u2013\u2014]\s*)?`?([A-Z][a-z0-9]+(?:[A-Z0-9][A-Za-z0-9]*)+)`?"
    r"\s*(?:$|[:(|\-\u2013\u2014])"
)
_ALERT_LABEL = re.compile(r"^(alert|alerts|alert ?names?|alertname|prometheus alert|alert rule)$", re.I)
_SEVERITY_LABEL = re.compile(r"^(severity|priority|sev|level)$", re.I)
_LINE_LABEL = re.compile(r"^\s*(alert|alerts|alert ?names?|alertname|severity|priority)\s*[:=]\s*(.+)$", re.I)
# Prose headings that raise the safety of what they hold; they never lower it.
_DANGER_HEADING = re.compile(
    r"\bnot\s+safe\b|\bunsafe\b|destructive|dangerous|\bdanger\b|requires?\s+(approval|sign-?off|two)|irreversible"
    r"|\bdo not\b|\bcaution\b|last resort|data loss|break[- ]glass",
    re.I,
)


def decoration(title: str) -> bool:
    """Rules, banners (`=====`) and empty headings: they name nothing."""
    return not re.search(r"[^\W_]", title)


def alert_names_in(value: str) -> list[str]:
    return [n.strip("`'\" ") for n in re.split(r"[,;\s]+(?:and\s+|or\s+)?", value) if n.strip("`'\" ")]


def normalise(title: str) -> str:
    text = _NUMBERING.sub("", title.strip())
    text = re.sub(r"[^\w\s&'/-]", " ", text.lower())
    return " ".join(text.split())


def clean_title(title: str) -> str:
    return _NUMBERING.sub("", title.strip()).strip().rstrip(":").strip() or title.strip()


def section_kind(title: str) -> str | None:
    text = normalise(title)
    return next((kind for kind, pattern in _KIND_PATTERNS if pattern.match(text)), None)


def is_reference(title: str) -> bool:
    return bool(_REFERENCE.match(normalise(title)))


def severity_from(text: str) -> str:
    text = text.lower()
    for severity, pattern in (
        (Severity.SEV1, r"\bp0\b|critical|sev-?1"),
        (Severity.SEV2, r"\bp1\b|\bhigh\b|major|sev-?2"),
        (Severity.SEV3, r"\bp2\b|medium|warning|minor|sev-?3"),
        (Severity.SEV4, r"\bp3\b|\blow\b|info|sev-?4"),
    ):
        if re.search(pattern, text):
            return severity
    return ""


def inline_text(node: SyntaxTreeNode | None) -> str:
    if node is None:
        return ""
    if node.type in {"text", "code_inline"}:
        return node.content
    if node.type in {"softbreak", "hardbreak"}:
        return "\n"
    return "".join(inline_text(child) for child in node.children)


def _tokens(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOPWORDS}


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


@dataclass
class Heading:
    level: int
    title: str
    start: int
    end: int = 0
    blocks: list[SyntaxTreeNode] = field(default_factory=list)
    children: list["Heading"] = field(default_factory=list)


@dataclass
class Label:
    title: str
    value: str
    header: bool


@dataclass
class Findings:
    """What the import report shows of a runbook beyond its content."""

    alert_sources: dict[str, str] = field(default_factory=dict)
    unclassified: list[str] = field(default_factory=list)


@dataclass
class ParsedDocument:
    title: str
    sections: list[SectionSpec]
    runbooks: list[RunbookSpec]
    warnings: list[str]
    findings: dict[str, Findings] = field(default_factory=dict)
    shape: str = "collection"  # or "one runbook"


def outline(text: str) -> tuple[list[SyntaxTreeNode], list[Heading], list[str], str]:
    root = SyntaxTreeNode(_md.parse(text))
    lines = text.splitlines()
    preamble, tops, stack, flat = [], [], [], []
    front_matter = ""
    for node in root.children:
        if node.type == "front_matter":
            front_matter = node.content
        elif node.type == "heading" and decoration(inline_text(node.children[0])):
            continue  # a banner or an empty heading: its text stays with the heading before it
        elif node.type == "heading":
            heading = Heading(level=int(node.tag[1]), title=inline_text(node.children[0]).strip(), start=node.map[0])
            while stack and stack[-1].level >= heading.level:
                stack.pop()
            (stack[-1].children if stack else tops).append(heading)
            stack.append(heading)
            flat.append(heading)
        else:
            (stack[-1].blocks if stack else preamble).append(node)
    for n, heading in enumerate(flat):
        heading.end = next((h.start for h in flat[n + 1 :] if h.level <= heading.level), len(lines))
    return preamble, tops, lines, front_matter


@dataclass
class _Cursor:
    """Where the blocks of one heading go while they are read: the current section (or a reference
    section hoisted to the document) and the prose not yet written into it."""

    section: int
    kind: str
    inherited: str
    level: int
    hoisting: SectionSpec | None = None
    prose: list[str] = field(default_factory=list)


class Builder:
    """Collects the sections and steps of one runbook (or the document's own sections)."""

    def __init__(self, lines: list[str], *, document_sections: list[SectionSpec], warnings: list[str]):
        self.lines = lines
        self.sections: list[SectionSpec] = []
        self.steps: list[StepSpec] = []
        self.alert_names: list[str] = []
        self.alert_sources: dict[str, str] = {}
        self.severity = ""
        self.dangerous_sections: set[int] = set()
        self.unclassified: list[str] = []
        self.hoist_references = False
        self.expected: list[tuple[str, str]] = []
        self.document_sections = document_sections
        self.warnings = warnings

    # --- markdown source ------------------------------------------------------------------

    def source(self, node: SyntaxTreeNode) -> str:
        start, end = node.map
        return "\n".join(self.lines[start:end]).strip("\n")

    def item_markdown(self, item: SyntaxTreeNode) -> str:
        start, end = item.map
        raw = self.lines[start:end]
        marker = _LIST_MARKER.match(raw[0]) if raw else None
        if not marker:
            return "\n".join(raw).strip()
        indent = len(marker.group(0))
        first = _CHECKBOX.sub("", raw[0][indent:])
        rest = [ln[indent:] if ln[:indent].strip() == "" else ln.lstrip() for ln in raw[1:]]
        return "\n".join([first, *rest]).strip()

    # --- sections -------------------------------------------------------------------------

    def add_section(self, title: str, kind: str, level: int) -> int:
        self.sections.append(SectionSpec(title=title, kind=kind, level=min(level, 8)))
        return len(self.sections) - 1

    def heading(self, heading: Heading, inherited: str, dangerous: bool = False) -> None:
        kind = section_kind(heading.title) or inherited
        index = self.add_section(heading.title, kind, heading.level)
        dangerous = dangerous or bool(_DANGER_HEADING.search(heading.title))
        if dangerous:
            self.dangerous_sections.add(index)
        named = _HEADING_ALERT.match(clean_title(heading.title))
        if named and re.match(r"(?i)^alert", clean_title(heading.title)):
            self.note_alerts([named[1]], "heading")
        self.content(heading.blocks, index, kind, heading.level)
        for child in heading.children:
            self.heading(child, kind, dangerous)

    def label(self, node: SyntaxTreeNode, following: SyntaxTreeNode | None) -> Label | None:
        """`**Safe Action**:` (bold, colon) or a short known title like `Symptoms` before a list or code."""
        inline = node.children[0] if node.children else None
        kids = [k for k in (inline.children if inline else []) if not (k.type == "text" and not k.content)]
        if not kids:
            return None
        if kids[0].type == "strong":
            title = inline_text(kids[0]).strip()
            rest = inline_text(inline)[len(inline_text(kids[0])) :]
            first_line, _, more = rest.partition("\n")
            if not (title.endswith(":") or first_line.lstrip().startswith(":")):
                return None
            value = first_line.lstrip().removeprefix(":").strip()
            return Label(title.rstrip(":").strip(), value, header=not value and not more.strip())
        text = inline_text(inline).strip()
        if (
            "\n" not in text
            and len(text.split()) <= 5
            and not text.endswith(".")
            and following is not None
            and following.type in {"bullet_list", "ordered_list", "fence", "code_block"}
            and (section_kind(text.rstrip(":")) or is_reference(text.rstrip(":")))
        ):
            return Label(text.rstrip(":").strip(), "", header=True)
        return None

    def note_alerts(self, names: list[str], source: str) -> None:
        for name in names:
            if name and len(name) <= 200 and name not in self.alert_names:
                self.alert_names.append(name)
                self.alert_sources[name] = source

    def note_severity(self, value: str) -> None:
        self.severity = self.severity or severity_from(value)

    def metadata(self, node: SyntaxTreeNode, source: str = "label") -> bool:
        """Alert names and severity from `**Alert Name:** `Name``, `Alert: Name` and `**Severity**:` lines.
        Returns True when every line of the paragraph was such a line."""
        inline = node.children[0] if node.children else None
        if inline is None:
            return False
        line: list[SyntaxTreeNode] = []
        found, lines = 0, 0
        for kid in [*inline.children, None]:
            if kid is not None and kid.type not in {"softbreak", "hardbreak"}:
                if kid.type != "text" or kid.content or line:
                    line.append(kid)
                continue
            lines += 1
            strong = next((k for k in line[:1] if k.type == "strong"), None)
            if strong is not None:
                label = inline_text(strong).strip().rstrip(":").strip()
                value = "".join(inline_text(k) for k in line[1:]).lstrip(": ").strip()
                names = [k.content.strip() for k in line if k.type == "code_inline"] or alert_names_in(value)
            else:
                plain = _LINE_LABEL.match("".join(inline_text(k) for k in line))
                label, value = (plain[1], plain[2].strip()) if plain else ("", "")
                names = [k.content.strip() for k in line if k.type == "code_inline"] or alert_names_in(value)
                source = "line" if source == "label" else source
            if _ALERT_LABEL.match(label):
                self.note_alerts(names, source)
                found += 1
            elif _SEVERITY_LABEL.match(label):
                self.note_severity(value)
                found += 1
            elif strong is not None and label.lower() in _METADATA_LABELS:
                found += 1
            line = []
        return found > 0 and found == lines

    def is_metadata(self, node: SyntaxTreeNode) -> bool:
        inline = node.children[0] if node.children else None
        kids = [k for k in (inline.children if inline is not None else []) if k.type != "text" or k.content]
        first = kids[0] if kids else None
        if first is not None and first.type == "strong":
            label = inline_text(first).strip().rstrip(":").strip()
            return bool(_ALERT_LABEL.match(label) or _SEVERITY_LABEL.match(label)) or label.lower() in _METADATA_LABELS
        return bool(_LINE_LABEL.match(inline_text(inline)))

    def table(self, node: SyntaxTreeNode) -> None:
        """Alert names and severity from a table: a key/value table (`| Alert Name | X |`) or a column
        headed Alert."""
        rows = [
            [inline_text(cell.children[0] if cell.children else None).strip() for cell in row.children]
            for part in node.children
            for row in part.children
        ]
        if not rows:
            return
        header = [h.lower().strip(" *:") for h in rows[0]]
        column = next((n for n, h in enumerate(header) if _ALERT_LABEL.match(h)), None)
        severity = next((n for n, h in enumerate(header) if _SEVERITY_LABEL.match(h)), None)
        if column is not None:
            for row in rows[1:]:
                if column < len(row):
                    self.note_alerts(alert_names_in(row[column]), "table")
                if severity is not None and severity < len(row):
                    self.note_severity(row[severity])
            return
        for row in rows:
            if len(row) >= 2:
                label = row[0].strip(" *:")
                if _ALERT_LABEL.match(label):
                    self.note_alerts(alert_names_in(row[1]), "table")
                elif _SEVERITY_LABEL.match(label):
                    self.note_severity(row[1])

    def content(self, blocks: list[SyntaxTreeNode], index: int, kind: str, level: int) -> None:
        at = _Cursor(section=index, kind=kind, inherited=kind, level=level)
        skip_next = False
        for n, node in enumerate(blocks):
            if skip_next:
                skip_next = False
                continue
            following = blocks[n + 1] if n + 1 < len(blocks) else None
            if node.type == "paragraph":
                skip_next = self.paragraph(at, node, following)
            elif at.hoisting is not None:
                at.prose.append(self.source(node))
            elif node.type in {"bullet_list", "ordered_list"}:
                self.list_block(at, node)
            elif node.type in {"fence", "code_block"}:
                self.code_block(at, node)
            elif node.type != "hr":
                if node.type == "table":
                    self.table(node)
                at.prose.append(self.source(node))
        self.flush(at)

    def flush(self, at: "_Cursor") -> None:
        body = "\n\n".join(p for p in at.prose if p.strip())
        target = at.hoisting if at.hoisting is not None else self.sections[at.section]
        target.body = "\n\n".join(b for b in (target.body, body) if b)
        at.prose.clear()

    def paragraph(self, at: "_Cursor", node: SyntaxTreeNode, following: SyntaxTreeNode | None) -> bool:
        """Metadata, a label opening a section, the label of sample output, or prose.
        Returns True when the paragraph took the block after it (the sample output)."""
        self.metadata(node)
        label = self.label(node, following)
        code_follows = following is not None and following.type in {"fence", "code_block"}
        if label and code_follows and self.sample_output(label, following):
            return True
        if label and label.header:
            self.open_section(at, label)
            return False
        at.prose.append(self.source(node))
        return False

    def sample_output(self, label: Label, block: SyntaxTreeNode) -> bool:
        """Sample output belongs to the step before it and is shown there, not in the prose."""
        if not self.steps:
            return False
        name = normalise(label.title)
        step = self.steps[-1]
        if name in {"expected output", "expected result", "expected"}:
            step.expected = block.content.strip()[:2000]
            return True
        if name in {"example output", "example"}:
            step.instructions = f"{step.instructions}\n\nExample output:\n\n{self.source(block)}".strip()
            return True
        return False

    def open_section(self, at: "_Cursor", label: Label) -> None:
        """A header label starts a section of this runbook, or reference material for the document."""
        self.flush(at)
        if is_reference(label.title):
            at.hoisting = SectionSpec(title=label.title, kind=SectionKind.REFERENCE, level=at.level + 1)
            self.document_sections.append(at.hoisting)
            return
        at.hoisting = None
        at.kind = section_kind(label.title) or at.inherited
        parent_dangerous = at.section in self.dangerous_sections
        at.section = self.add_section(label.title, at.kind, at.level + 1)
        if parent_dangerous or _DANGER_HEADING.search(label.title):
            self.dangerous_sections.add(at.section)

    def list_block(self, at: "_Cursor", node: SyntaxTreeNode) -> None:
        """A list of labelled sections, prose in a descriptive section, or else one step per item."""
        metadata = [
            self.metadata(item.children[0], "list")
            for item in node.children
            if item.children and item.children[0].type == "paragraph"
        ]
        if metadata and all(metadata) and len(metadata) == len(node.children):
            at.prose.append(self.source(node))
            return
        if any(metadata):
            # `- **Alert Name:** ...` items describe the runbook; the others are its steps.
            at.prose.append(self.source(node))
            items = [
                item
                for item in node.children
                if not (item.children and item.children[0].type == "paragraph" and self.is_metadata(item.children[0]))
            ]
            if at.kind not in DESCRIPTIVE_KINDS:
                for item in items:
                    self.step_from_item(item, at.section, at.kind)
            return
        if self.is_label_list(node):
            self.flush(at)
            for item in node.children:
                self.label_item(item, at.kind, at.level + 1)
            return
        if at.kind in DESCRIPTIVE_KINDS:
            at.prose.append(self.source(node))
            if at.kind == SectionKind.EXPECTED:
                self.expected += [self.expected_item(item) for item in node.children]
            return
        for item in node.children:
            self.step_from_item(item, at.section, at.kind)

    def code_block(self, at: "_Cursor", node: SyntaxTreeNode) -> None:
        """Commands become steps; text that is no command is an example for the step before it."""
        if at.kind in {SectionKind.EXPECTED, SectionKind.REFERENCE}:
            at.prose.append(self.source(node))
            return
        units = code_units(node.info if node.type == "fence" else "", node.content)
        if not units:
            self.attach_example(node, at.section, at.prose)
            return
        fallback = clean_title(self.sections[at.section].title)
        for u, unit in enumerate(units):
            self.step_from_unit(unit, at.section, at.kind, fallback if u == 0 else f"{fallback} ({u + 1})")

    def attach_example(self, node: SyntaxTreeNode, section: int, prose: list[str]) -> None:
        """Plain text blocks (sample output) belong to the step before them, else to the prose."""
        if self.steps and self.steps[-1].section == section:
            step = self.steps[-1]
            step.instructions = f"{step.instructions}\n\n{self.source(node)}".strip()
        else:
            prose.append(self.source(node))

    def is_label_list(self, node: SyntaxTreeNode) -> bool:
        """A list of `**Label**: ...` items where some item holds its own list: each item is a section."""
        labelled, nested = True, False
        for item in node.children:
            first = item.children[0] if item.children else None
            if first is None or first.type != "paragraph" or not self.label(first, None):
                labelled = False
                break
            nested = nested or any(c.type in {"bullet_list", "ordered_list", "fence"} for c in item.children[1:])
        return labelled and nested

    def label_item(self, item: SyntaxTreeNode, inherited: str, level: int) -> None:
        label = self.label(item.children[0], None)
        kind = section_kind(label.title) or inherited
        if is_reference(label.title):
            self.document_sections.append(
                SectionSpec(label.title, SectionKind.REFERENCE, level, self.item_markdown(item))
            )
            return
        index = self.add_section(label.title, kind, level)
        self.sections[index].body = label.value
        self.content(item.children[1:], index, kind, level)

    def expected_item(self, item: SyntaxTreeNode) -> tuple[str, str]:
        text = inline_text(item.children[0].children[0]) if item.children and item.children[0].children else ""
        label, _, value = text.partition(":")
        return (label.strip(), value.strip()) if value else (text.strip(), text.strip())

    # --- steps ----------------------------------------------------------------------------

    def step_from_item(self, item: SyntaxTreeNode, section: int, kind: str) -> None:
        first = item.children[0] if item.children else None
        text = _CHECKBOX.sub(
            "", inline_text(first.children[0]) if first is not None and first.type == "paragraph" else ""
        )
        title = _short(text.rstrip(":").strip()) or "Step"
        fences = [c for c in item.children if c.type in {"fence", "code_block"}]
        command, recognised = "", Recognised()
        if fences:
            command = "\n".join(f.content.rstrip() for f in fences)
            units = [u for f in fences for u in code_units(f.info if f.type == "fence" else "", f.content)]
            if len(units) == 1 and units[0].recognised.action:
                recognised = units[0].recognised
            elif units:
                safety = strictest(*(u.recognised.safety for u in units))
                recognised = Recognised(safety=safety)
        elif first is not None and first.children:
            spans = [k.content for k in first.children[0].children if k.type == "code_inline"]
            command = next((s for s in spans if looks_like_command(s)), "")
            if command:
                recognised = recognise_inline(command)
        # The first paragraph is the title; what follows it (nested lists, notes) are the instructions.
        details = [textwrap.dedent(self.source(c)) for c in item.children[1:] if c.type not in {"fence", "code_block"}]
        if title.endswith("…"):
            details.insert(0, text)
        self.add_step(
            title=title,
            section=section,
            kind=kind,
            instructions="\n\n".join(details).strip(),
            command=command,
            recognised=recognised,
            prose=text,
        )

    def step_from_unit(self, unit: Unit, section: int, kind: str, fallback: str) -> None:
        title = unit.title or (fallback if fallback else _short(unit.command.splitlines()[0], 80))
        self.add_step(
            title=_short(title),
            section=section,
            kind=kind,
            instructions="\n".join(unit.notes),
            command=unit.command,
            recognised=unit.recognised,
            prose="",
            expected=unit.expected,
        )

    def add_step(self, *, title, section, kind, instructions, command, recognised, prose, expected="") -> None:
        unsafe = kind == SectionKind.UNSAFE_ACTIONS or section in self.dangerous_sections
        self.unclassified += recognised.unknown
        if recognised.action:
            safety = Safety.DANGEROUS if unsafe else recognised.safety
            step = StepSpec(
                title=title,
                section=section,
                instructions=instructions,
                command=command,
                kind=StepKind.AUTOMATED,
                action=recognised.action,
                params=dict(recognised.params),
                safety=safety,
                expected=expected,
            )
        else:
            safety = strictest(
                recognised.safety, classify_prose(prose), Safety.DANGEROUS if unsafe else Safety.READ_ONLY
            )
            step = StepSpec(
                title=title,
                section=section,
                instructions=instructions,
                command=command,
                safety=safety,
                expected=expected,
            )
        step.parameters = declare(
            automated=step.kind == StepKind.AUTOMATED, action=step.action, params=step.params, command=step.command
        )
        self.steps.append(step)

    def attach_expected(self) -> None:
        """Matches "Expected Results" lines ("API Health: Status 200, response time <100ms") to steps."""
        for label, value in self.expected:
            words = _tokens(label)
            scored = [(len(words & _tokens(s.title)), -n, s) for n, s in enumerate(self.steps)]
            best = max(scored, default=None, key=lambda t: (t[0], t[1]))
            if best is None or best[0] == 0:
                self.warnings.append(f"Expected result {label!r} matches no step; kept in the section text.")
                continue
            step = best[2]
            if step.expected.lower() in value.lower():
                step.expected = value
            elif value.lower() not in step.expected.lower():
                step.expected = f"{step.expected}; {value}"
            _thresholds_from_expected(step, value)


def _thresholds_from_expected(step: StepSpec, text: str) -> None:
    if step.action == "http_check":
        status = re.search(r"status\s*(\d{3})", text, re.I)
        latency = re.search(r"(?:<|under|below|less than)\s*(\d+)\s*ms", text, re.I)
        if status:
            step.params["expected_status"] = int(status[1])
        if latency:
            step.params["max_latency_ms"] = int(latency[1])
    elif step.action == "host_check":
        percent = re.search(r"<\s*(\d+)\s*%", text)
        if percent:
            step.params["warn_percent"] = int(percent[1])
            step.params["critical_percent"] = max(int(percent[1]), 90)


def _meaningful(blocks: list[SyntaxTreeNode]) -> bool:
    return any(b.type != "hr" for b in blocks)


def _should_split(heading: Heading) -> bool:
    return (
        not _meaningful(heading.blocks)
        and len(heading.children) >= 2
        and not any(section_kind(c.title) for c in heading.children)
    )


def _one_runbook(candidates: list[Heading]) -> bool:
    """Headings named like the parts of one runbook (Symptoms, Diagnosis, Mitigation, Escalation...)
    make one runbook with sections; headings named like alerts or services make a collection."""
    kinds = [section_kind(c.title) for c in candidates]
    template = sum(bool(k) or is_reference(c.title) for k, c in zip(kinds, candidates, strict=True))
    return len(candidates) >= 2 and len(set(kinds) - {None}) >= 2 and template * 3 >= len(candidates) * 2


def _front_matter(raw: str, warnings: list[str]) -> dict:
    if not raw.strip():
        return {}
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 2})" if mark else ""
        warnings.append(f"The front matter is not valid YAML{where}; it was ignored.")
        return {}
    if not isinstance(data, dict):
        warnings.append("The front matter is not a mapping of keys to values; it was ignored.")
        return {}
    return {str(k).lower().replace("-", "_"): v for k, v in data.items()}


def _meta_alerts(meta: dict) -> list[str]:
    names: list[str] = []
    for key in ("alert", "alerts", "alertname", "alert_name", "alert_names"):
        value = meta.get(key)
        if isinstance(value, str):
            names += alert_names_in(value)
        elif isinstance(value, list):
            names += [str(v).strip() for v in value if isinstance(v, str | int) and str(v).strip()]
    return names


def _shape(tops: list[Heading], preamble, lines: list[str], meta: dict, key: str):
    """One runbook with sections, or a collection: (one, the single top heading, the document's
    title, the preamble, the headings that become runbooks)."""
    single = tops[0] if len(tops) == 1 else None
    one = _one_runbook(single.children if single is not None else tops)
    if one and single is None:
        name = meta.get("title") if isinstance(meta.get("title"), str) else ""
        name = name or key.replace("-", " ").replace("_", " ").strip().capitalize() or "Runbook"
        single = Heading(level=0, title=name, start=0, end=len(lines), children=tops)
    if single is None:
        title = key.replace("-", " ").replace("_", " ").strip().capitalize() or "Runbooks"
        return one, None, title, preamble, tops
    if not one and single.children:
        return one, single, clean_title(single.title), preamble + single.blocks, single.children
    return one, single, clean_title(single.title), preamble, [single]


def _apply_front_matter(meta: dict, runbooks: list[RunbookSpec], findings: dict, warnings: list[str]) -> None:
    """Alert names and severity from YAML front matter go to the document's one runbook."""
    alerts = _meta_alerts(meta)
    if alerts and len(runbooks) == 1:
        runbooks[0].alert_names = list(dict.fromkeys([*runbooks[0].alert_names, *alerts]))
        for name in alerts:
            findings[runbooks[0].slug].alert_sources.setdefault(name, "front matter")
    elif alerts:
        warnings.append("The front matter names alerts but the document holds several runbooks; name them in each.")
    severity = severity_from(str(meta.get("severity") or meta.get("priority") or ""))
    if severity and len(runbooks) == 1 and not runbooks[0].severity:
        runbooks[0].severity = severity


def parse_document(text: str, key: str) -> ParsedDocument:
    """Pure parsing: no database. Raises ValueError when the document has no headings."""
    preamble, tops, lines, front_matter = outline(text)
    if not tops:
        raise ValueError("The document has no headings; a runbook document needs at least one (# Title).")
    warnings: list[str] = []
    meta = _front_matter(front_matter, warnings)
    document_sections: list[SectionSpec] = []
    one, single, title, preamble, candidates = _shape(tops, preamble, lines, meta, key)

    if _meaningful(preamble):
        intro = Builder(lines, document_sections=document_sections, warnings=warnings)
        index = intro.add_section("Introduction", SectionKind.REFERENCE, 2)
        intro.content(preamble, index, SectionKind.REFERENCE, 2)
        document_sections[:0] = intro.sections

    runbooks: list[RunbookSpec] = []
    used_slugs: set[str] = set()
    findings: dict[str, Findings] = {}

    def runbook(heading: Heading, category: str = "") -> None:
        builder = Builder(lines, document_sections=document_sections, warnings=warnings)
        if one:
            builder.hoist_references = True
        spec = _runbook_spec(builder, heading, key=key, category=category, used_slugs=used_slugs)
        if not spec.steps and not any(s.body.strip() for s in spec.sections):
            warnings.append(f"The heading {heading.title!r} has nothing under it; it made no runbook.")
            used_slugs.discard(spec.slug)
            return
        runbooks.append(spec)
        findings[spec.slug] = Findings(dict(builder.alert_sources), list(dict.fromkeys(builder.unclassified)))

    for heading in candidates:
        if is_reference(heading.title) and heading is not single:
            document_sections.append(_reference(heading, lines))
        elif _should_split(heading):
            for child in heading.children:
                if is_reference(child.title):
                    document_sections.append(_reference(child, lines))
                else:
                    runbook(child, clean_title(heading.title))
        else:
            runbook(heading)
    _apply_front_matter(meta, runbooks, findings, warnings)
    return ParsedDocument(
        title=title[:200],
        sections=document_sections,
        runbooks=runbooks,
        warnings=warnings,
        findings=findings,
        shape="one runbook" if one else "collection",
    )


def _reference(heading: Heading, lines: list[str]) -> SectionSpec:
    """Reference material (contacts, overview...) stays with the document, as written."""
    body = "\n".join(lines[heading.start + 1 : heading.end]).strip()
    return SectionSpec(heading.title, SectionKind.REFERENCE, heading.level, body)


def _runbook_spec(builder: Builder, heading: Heading, *, key: str, category: str, used_slugs: set[str]) -> RunbookSpec:
    """One runbook from a heading: its own text, its sub-headings as sections, its alerts."""
    own_kind = section_kind(heading.title) or SectionKind.PROCEDURE
    if _meaningful(heading.blocks):
        index = builder.add_section(heading.title, own_kind, max(heading.level, 1))
        builder.content(heading.blocks, index, own_kind, max(heading.level, 1))
    for child in heading.children:
        if builder.hoist_references and is_reference(child.title):
            # Reference-only parts of a one-runbook document (links, contacts) are shown, never steps.
            builder.document_sections.append(_reference(child, builder.lines))
        else:
            builder.heading(child, own_kind)
    builder.attach_expected()
    name = clean_title(heading.title)
    named = _HEADING_ALERT.match(name)
    if named and (not builder.alert_names or re.match(r"(?i)^alert", name)):
        builder.note_alerts([named[1]], "heading")
    alerts = list(dict.fromkeys(builder.alert_names))
    return RunbookSpec(
        title=name[:200],
        slug=_unique_slug(slugify(f"{key}-{name}")[:140] or f"{key}-runbook", used_slugs),
        category=category[:200],
        alert_names=alerts,
        severity=builder.severity,
        sections=builder.sections,
        steps=builder.steps,
        source="\n".join(builder.lines[heading.start : heading.end]).strip(),
    )


def _unique_slug(base: str, used: set[str]) -> str:
    slug, n = base, 1
    while slug in used:
        n += 1
        slug = f"{base}-{n}"
    used.add(slug)
    return slug
