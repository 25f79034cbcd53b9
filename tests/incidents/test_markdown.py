from html.parser import HTMLParser

import pytest

from opsportal.markdown import render_markdown


class TagCollector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def tags_of(html: str) -> list[tuple[str, dict]]:
    parser = TagCollector()
    parser.feed(html)
    return parser.tags


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        "hello <script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        '<a href="javascript:alert(1)">x</a>',
        "![x](javascript:alert(1))",
        "<iframe src=https://evil.example></iframe>",
        '<div onclick="alert(1)">x</div>',
    ],
)
def test_nothing_executable_survives(text):
    for tag, attrs in tags_of(render_markdown(text)):
        assert tag in {"p", "a", "em", "strong", "code"}, tag
        assert not any(name.startswith("on") for name in attrs)
        assert not attrs.get("href", "").strip().lower().startswith("javascript")


def test_ordinary_markdown_is_kept():
    html = render_markdown("**bold** `code` [docs](https://example.com)\n\n- one\n- two")
    assert "<strong>bold</strong>" in html and "<code>code</code>" in html
    assert '<a href="https://example.com" rel="noopener noreferrer nofollow">docs</a>' in html
    assert "<li>one</li>" in html


@pytest.mark.django_db
def test_api_returns_sanitised_html(api, incident):
    response = api.post(
        f"/api/incidents/{incident.pk}/timeline/",
        {"body": "<script>alert(1)</script>[x](javascript:alert(1))"},
        format="json",
    )
    assert response.status_code == 201
    html = response.json()["body_html"]
    assert "<script" not in html and 'href="javascript' not in html
    assert "&lt;script&gt;" in html  # shown as text, never run
    assert response.json()["body"] == "<script>alert(1)</script>[x](javascript:alert(1))"
