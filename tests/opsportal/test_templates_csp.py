"""Templates carry no inline script: the production CSP (script-src 'self', no 'unsafe-inline' or
'unsafe-eval') would block it silently. Behaviour lives in static/js/portal.js."""

import re
from pathlib import Path

import pytest
from django.conf import settings

TEMPLATES = sorted(Path(settings.BASE_DIR, "templates").rglob("*.html"))
INLINE_HANDLER = re.compile(r"""<[^>]*\son[a-z]+\s*=""", re.IGNORECASE | re.DOTALL)
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\ssrc=)[^>]*>", re.IGNORECASE)
# htmx evaluates trigger filters (`hx-trigger="change[cond]"`) and hx-on with Function(): blocked too.
HTMX_EVAL = re.compile(r"""hx-trigger="[^"]*\[[^"]*\]"|hx-on[:-]""")


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: str(p.relative_to(settings.BASE_DIR)))
def test_no_inline_handlers_scripts_or_evaluated_htmx(path):
    text = path.read_text()
    for pattern in (INLINE_HANDLER, INLINE_SCRIPT, HTMX_EVAL):
        found = pattern.search(text)
        assert found is None, f"{path.name}: {found.group(0)[:120]!r} needs the CSP to allow inline script"
