"""The console for 3 a.m. in the system Chromium: keyboard shortcuts (the ``?`` overlay,
j/k, acknowledge with ``a`` on the table and on the case page, ``g c``/``g q``), a row click,
and the phone layout (390 px: no horizontal scroll on the table, a case page, the queue and
the endpoints page; the table as cards). CSP violations fail every test (``browser_page``).

The README's screenshots come from ``scripts/screenshots`` (a demo instance), not from here.
"""

from __future__ import annotations

from datetime import timedelta

from app import clock
from app.accounts.models import User
from app.cases.models import Case
from app.extensions import db
from app.handoffs.service import create_handoff
from tests import test_browser
from tests.test_browser import _post_fixture, _sign_in
from tests.test_case_actions import make_case

browser_page, live_server = test_browser.browser_page, test_browser.live_server  # fixtures


def _ack_by(app, case_id: int) -> str | None:
    with app.app_context():
        return db.session.get(Case, case_id).acknowledged_by


def _cases(app, github, drain, live_server) -> dict[str, int]:
    """Real cases from GitHub's samples (deliveries, source links) plus a few by severity."""
    for name in ("issues.opened", "pull_request.opened", "pull_request.closed"):
        _post_fixture(live_server, github, name)
    assert drain() == 0
    return {
        "critical": make_case(app, "Checkout API answers 502 for 12% of requests in eu-west-1",
                              severity="critical", provider="alertmanager",
                              source_url="https://alerts.example.com/#/alerts?silenced=false"),
        "error": make_case(app, "NullPointerException in PaymentWorker.settle()", severity="error",
                           provider="sentry", source_url="https://sentry.example.com/issues/42/"),
        "info": make_case(app, "Weekly dependency update", severity="info"),
    }  # fmt: skip


def test_keyboard_overlay_move_acknowledge_open_and_go(
    app, live_server, browser_page, client, github, drain
):
    page = browser_page
    ids = _cases(app, github, drain, live_server)
    _sign_in(page, live_server, "admin@example.com")

    # Unacknowledged critical first (the urgency sort), with a coloured edge.
    first = page.locator("tr[data-case-id]").first
    assert first.get_attribute("data-case-id") == str(ids["critical"])
    assert "sev-critical" in first.get_attribute("class")

    # The overlay: ? opens it, Escape closes it.
    overlay = page.locator("#shortcuts")
    assert overlay.is_hidden()
    page.keyboard.press("?")
    overlay.wait_for(state="visible")
    assert "Acknowledge" in overlay.inner_text()
    page.keyboard.press("Escape")
    overlay.wait_for(state="hidden")

    # j j k: the first row is current; a acknowledges it (the table re-renders, the row keeps
    # its mark), Enter opens it.
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    current = page.locator("tr.is-current")
    assert current.get_attribute("data-case-id") == str(ids["critical"])
    page.keyboard.press("a")
    page.locator(f'tr[data-case-id="{ids["critical"]}"] .badge.ack').wait_for()
    assert _ack_by(app, ids["critical"]) == "admin@example.com"
    assert _ack_by(app, ids["error"]) is None
    page.locator(f'tr.is-current[data-case-id="{ids["critical"]}"]').wait_for()
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/cases/{ids['critical']}")

    # / focuses the search; typing there is not a shortcut.
    page.keyboard.press("g")
    page.keyboard.press("c")
    page.wait_for_url("**/cases")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.name") == "q"
    page.keyboard.type("ja")
    assert page.locator("#shortcuts").is_hidden()
    assert _ack_by(app, ids["error"]) is None

    # On a case page, a acknowledges it; m assigns it to me.
    page.goto(f"{live_server}/cases/{ids['error']}")
    page.keyboard.press("a")
    page.locator("#case-ack .badge.ack").wait_for()
    assert "admin@example.com" in page.locator("#case-ack").inner_text()
    assert _ack_by(app, ids["error"]) == "admin@example.com"
    page.keyboard.press("m")
    page.locator("#case-assignee", has_text="admin@example.com").wait_for()

    # A click on a row (not on its title link) opens the case; g q goes to the queue.
    page.goto(f"{live_server}/cases")
    page.locator(f'tr[data-case-id="{ids["info"]}"] td.age').click()
    page.wait_for_url(f"**/cases/{ids['info']}")
    page.keyboard.press("g")
    page.keyboard.press("q")
    page.wait_for_url("**/queue")


def test_skip_link_moves_focus_to_the_content(app, live_server, browser_page, client):
    page = browser_page
    _sign_in(page, live_server, "admin@example.com")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    skip.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"


def test_at_390_px_nothing_scrolls_sideways_and_the_table_is_cards(
    app, live_server, browser_page, client, github, drain
):
    page = browser_page
    ids = _cases(app, github, drain, live_server)
    with app.app_context():
        real_case = db.session.scalars(db.select(Case).where(Case.delivery_count > 0)).first()
        real_case, endpoint_id = real_case.id, real_case.endpoint_id
        # Something in both queue tabs, with long words, at phone width.
        admin = db.session.scalars(db.select(User)).first()
        escalate, park = db.session.get(Case, ids["error"]), db.session.get(Case, ids["info"])
        create_handoff(
            escalate,
            "escalate",
            "Needs the payments team: " + "x" * 60,
            "elevated",
            admin,
            next_step="Page the payments on-call",
        )
        create_handoff(park, "park", "Waiting for the vendor", "normal", admin,
                       waiting_on="Vendor support ticket VENDOR-" + "9" * 40,
                       resume_at=clock.now() + timedelta(hours=20))  # fmt: skip
        db.session.commit()
    page.set_viewport_size({"width": 390, "height": 844})
    _sign_in(page, live_server, "admin@example.com")

    def width() -> int:
        return page.evaluate("document.documentElement.scrollWidth")

    page.goto(f"{live_server}/cases")
    # Cards: title, severity, status, age shown; the other cells hidden; filters folded.
    card = page.locator(f'tr[data-case-id="{ids["critical"]}"]')
    for cell in ("title", "severity", "status", "age"):
        assert card.locator(f"td.{cell}").is_visible(), cell
    for cell in ("assignee", "deliveries", "updated"):
        assert card.locator(f"td.{cell}").is_hidden(), cell
    assert page.locator("form.filters").is_hidden()
    assert width() <= 390, f"/cases is {width()} px wide"
    page.get_by_text("Filters", exact=True).click()
    page.locator("select[name=severity]").wait_for(state="visible")
    assert width() <= 390, f"/cases with the filters open is {width()} px wide"
    # One tap acknowledges a card.
    card.get_by_role("button", name=f"Acknowledge case #{ids['critical']}").click()
    page.locator(f'tr[data-case-id="{ids["critical"]}"] .badge.ack').wait_for()

    pages = (
        f"/cases/{real_case}",
        f"/cases/{ids['critical']}",
        f"/cases/{ids['error']}",
        "/queue",
        "/queue?intent=park",
        "/endpoints",
        f"/endpoints/{endpoint_id}/deliveries",
    )
    for path in pages:
        page.goto(live_server + path)
        assert width() <= 390, f"{path} is {width()} px wide at 390 px"
    page.goto(f"{live_server}/queue")
    page.locator("tr[data-handoff-id]").first.wait_for()
    assert width() <= 390
