"""Every main page at 1400x900 and 390x844, light and dark: no horizontal scroll, and axe-core
(vendored: tests/e2e/vendor/axe-core-4.14.1.min.js) reports no serious or critical violation.
Plus the skip link, the collapsed navigation, the incident page's keyboard shortcuts and the
approvals badge, in a real browser. Screenshots go to $ROOM_SCREENSHOTS when it is set."""

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from incidents.models import Incident, TimelineEvent
from runbooks.models import RunbookRun
from tests.factories import ServiceFactory, UserFactory
from tests.runbooks.conftest import make_runbook, manual

pytestmark = pytest.mark.django_db(transaction=True)

AXE = (Path(__file__).parent / "vendor" / "axe-core-4.14.1.min.js").read_text()
SIZES = {"desktop": {"width": 1400, "height": 900}, "phone": {"width": 390, "height": 844}}
SHOTS = os.environ.get("ROOM_SCREENSHOTS")


@pytest.fixture
def portal(db):
    """A resolved incident with a review, an open one with notes and a run waiting for approval."""
    alice = UserFactory(username="alice", role="responder")
    UserFactory(username="bob", role="responder")
    shop = ServiceFactory(name="Online shop", slug="shop", public=True)
    old = Incident.declare(by=alice, title="Search returns empty results", severity="SEV3", services=[shop])
    old.set_public(by=alice, public=True, public_title="Search results missing")
    old.transition_to("resolved", by=alice, note="Reindexed")
    incident = Incident.declare(
        by=alice, title="5xx rate 4.2% on cosmetica-api (>1%) — upstream lb-3 checkout-service", severity="SEV2"
    )
    incident.update_details(by=alice, services=[shop])
    for n in range(3):
        TimelineEvent.add_note(
            incident, by=alice, body=f"Checked `pg_stat_activity` on db-{n}: 412 idle in transaction"
        )
    runbook = make_runbook("Failover", steps=[manual("Promote the replica", safety="dangerous")])
    run = RunbookRun.start(runbook, by=alice, incident=incident)
    return {"incident": incident, "old": old, "run": run}


@pytest.fixture
def open_page(browser, live_server, login):
    contexts = []

    def make(size: str, username: str | None = "alice", scheme: str = "light"):
        context = browser.new_context(
            base_url=live_server.url,
            viewport=SIZES[size],
            color_scheme=scheme,
            timezone_id="Europe/Paris",
            bypass_csp=True,  # axe is injected by the test; the pages' own CSP is tested elsewhere
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        if username:
            login(page, username)
        return page

    yield make
    for context in contexts:
        context.close()


def serious_violations(page) -> list[str]:
    page.evaluate(AXE)
    results = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in results
        if v["impact"] in ("serious", "critical")
    ]


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def pages(data) -> dict[str, str]:
    return {
        "dashboard": "/",
        "incidents": "/incidents/",
        "incident": f"/incidents/{data['incident'].pk}/",
        "run": data["run"].get_absolute_url(),
        "review": f"/reviews/{data['old'].review.pk}/",
        "reviews and charts": "/reviews/",
        "status": "/status/",
    }


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", SIZES)
def test_main_pages_fit_the_screen_and_pass_axe(open_page, portal, size, scheme):
    page = open_page(size, scheme=scheme)
    for name, url in pages(portal).items():
        page.goto(url)
        page.wait_for_load_state("networkidle")
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=f"{SHOTS}/{size}-{scheme}-{name.replace(' ', '-')}.png", full_page=True)
        assert no_horizontal_scroll(page), f"{name} scrolls sideways at {size}"
        assert serious_violations(page) == [], f"{name} at {size}, {scheme}"


def test_dark_mode_follows_the_system_setting(open_page, portal):
    light, dark = open_page("desktop"), open_page("desktop", scheme="dark")
    for page in (light, dark):
        page.goto(f"/incidents/{portal['incident'].pk}/")
    background = "getComputedStyle(document.body).backgroundColor"
    assert light.evaluate(background) == "rgb(245, 246, 248)"
    assert dark.evaluate(background) == "rgb(18, 21, 28)"


def test_the_phone_navigation_collapses_and_the_skip_link_comes_first(open_page, portal):
    page = open_page("phone")
    page.goto("/incidents/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    expect(page.get_by_role("link", name="Skip to content")).to_be_in_viewport()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    nav = page.locator("#main-nav")
    expect(nav).to_be_hidden()
    page.get_by_role("button", name="Menu").click()
    expect(nav.get_by_role("link", name="Runbooks")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_keyboard_shortcuts_on_the_incident_page(open_page, portal):
    page = open_page("desktop")
    incident = portal["incident"]
    page.goto(f"/incidents/{incident.pk}/")
    page.keyboard.press("?")
    expect(page.locator("#shortcuts")).to_be_visible()
    page.keyboard.press("Escape")
    page.keyboard.press("n")
    assert page.evaluate("document.activeElement.id") == "entry-body"
    page.keyboard.type("a note typed with the a key")  # typing in a box is not a shortcut
    page.locator("body").click(position={"x": 5, "y": 300})
    page.keyboard.press("a")
    expect(page.get_by_test_id("status")).to_have_text("Acknowledged")
    assert page.input_value("#entry-body") == "a note typed with the a key"
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "nav-search"


@pytest.mark.parametrize("size", SIZES)
def test_the_approvals_badge_and_inbox(open_page, portal, size):
    starter = open_page(size, "alice")
    starter.goto("/")
    expect(starter.get_by_test_id("approvals-inbox")).to_have_count(0)
    page = open_page(size, "bob")
    page.goto("/")
    inbox = page.get_by_test_id("approvals-inbox")
    expect(inbox).to_contain_text("Step 1: Promote the replica (dangerous)")
    if size == "phone":
        expect(page.get_by_role("button", name="Menu")).to_contain_text("1")
        page.get_by_role("button", name="Menu").click()
    expect(page.get_by_test_id("approvals-badge")).to_contain_text("1")
    inbox.get_by_role("link").click()
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#run-live")).to_contain_text("approved by bob")
    page.goto("/")
    expect(page.get_by_test_id("approvals-inbox")).to_have_count(0)
