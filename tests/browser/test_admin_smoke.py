"""One on-call triage round in a real browser: log in, filter, open, resolve.

Playwright drives Debian's Chromium (/usr/bin/chromium, installed by
.ci/install-chromium.sh) against pytest-django's live server; it never
downloads a browser. Database work happens before the browser starts and
after it stops, never while Playwright's event loop runs.
"""

import shutil
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from alerts.tests.factories import AlertAnalysisFactory, AlertFactory
from incidents.models import Incident
from incidents.tests.assertions import assert_incident_resolved

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "s3cret-pass!"


@pytest.fixture
def sync_playwright():  # noqa: ANN201
    if not (CHROMIUM.exists() or shutil.which("chromium")):
        pytest.skip(
            "Chromium not installed (/usr/bin/chromium): run .ci/install-chromium.sh"
        )
    module = pytest.importorskip(
        "playwright.sync_api",
        reason="playwright not installed: pip install -e '.[dev]'",
    )
    return module.sync_playwright


@pytest.fixture
def browser_settings(settings):  # noqa: ANN001, ANN201
    """Plain static files (no collectstatic) and cookies over plain http."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {
            "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        },
    }
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    return settings


def test_operator_resolves_an_incident_from_the_console(
    live_server, sync_playwright, browser_settings, tmp_path
):
    get_user_model().objects.create_superuser(username="operator", password=PASSWORD)
    from django.utils import timezone

    target = Incident.objects.create(
        title="Checkout down", severity="critical", fired_at=timezone.now()
    )
    Incident.objects.create(
        title="Disk filling", severity="warning", fired_at=timezone.now()
    )
    alert = AlertFactory(incident=target, severity="critical", alarm_title="OOMKilled")
    AlertAnalysisFactory(alert=alert, summary="The pod ran **out of memory**.")
    screenshot = tmp_path / "resolved.png"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)
            page.goto(f"{live_server.url}/admin/login/?next=/admin/")
            page.fill("#id_username", "operator")
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_selector("#kuberca-triage")

            page.goto(f"{live_server.url}/admin/incidents/incident/")
            page.click("#changelist-filter a:text-is('Critical')")
            page.wait_for_url("**severity=critical**")
            rows = page.locator("#result_list tbody tr")
            assert rows.count() == 1

            page.click("#result_list a:text('Checkout down')")
            page.wait_for_selector("#kuberca-timeline")
            page.screenshot(path=str(tmp_path / "incident.png"), full_page=True)
            page.go_back()

            page.check("#result_list tbody tr input.action-select")
            page.select_option("select[name=action]", "resolve")
            page.click("button[name=index]")
            page.wait_for_selector("#kuberca-question")
            page.click("#kuberca-confirm")
            message = page.wait_for_selector(".messagelist .success")
            text = message.inner_text()
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()

    assert text.startswith(f"Resolved 1 incident(s): {target.pk}")
    assert screenshot.stat().st_size > 0
    assert_incident_resolved(target.pk, "operator")
