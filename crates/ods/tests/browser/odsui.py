"""Shared helpers of the browser tests (tests/browser/*.py), run by tests/ui_browser.rs.

Every script is started with these environment variables:
  ODS_URL          the server's base URL (http://127.0.0.1:PORT)
  ODS_USER         an admin's username
  ODS_PASSWORD     its password (already settled, unless the script tests first login)
  ODS_SHOTS        the directory screenshots go to
Scripts print one line `OK <what>` per check that passed and exit non-zero on the first
failure (an AssertionError or Playwright timeout), which the Rust test reports.
"""

import os
import sys
from contextlib import contextmanager

from playwright.sync_api import expect, sync_playwright

URL = os.environ.get("ODS_URL", "http://127.0.0.1:8080").rstrip("/")
USER = os.environ.get("ODS_USER", "admin")
PASSWORD = os.environ.get("ODS_PASSWORD", "")
SHOTS = os.environ.get("ODS_SHOTS", "ui-screenshots")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Laptop width by default; tablet_page() gives a tablet-sized one.
LAPTOP = {"width": 1280, "height": 860}
TABLET = {"width": 820, "height": 1180}


def ok(what):
    print(f"OK {what}", flush=True)


@contextmanager
def browser():
    """A headless system Chromium; yields the Browser."""
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def new_page(b, viewport=None):
    """A page in a fresh context (its own cookies), failing on any page error."""
    ctx = b.new_context(viewport=viewport or LAPTOP, base_url=URL)
    ctx.set_default_timeout(15000)
    page = ctx.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # A CSP violation or a script error is a bug: report it at the end of the script.
    page.on(
        "console",
        lambda m: errors.append(m.text) if m.type == "error" and "Content Security Policy" in m.text else None,
    )
    page.ods_errors = errors
    return page


def assert_no_page_errors(page):
    assert not page.ods_errors, f"script errors or CSP violations: {page.ods_errors}"


def login(page, user=None, password=None):
    """Logs in through the form at /."""
    page.goto("/")
    page.get_by_label("Username").fill(user or USER)
    page.get_by_label("Password", exact=True).fill(password if password is not None else PASSWORD)
    page.get_by_role("button", name="Log in").click()


def change_first_password(page, current, new):
    """On the forced password page, sets `new`; ends on the home tab."""
    expect(page).to_have_url(f"{URL}/account/password")
    page.get_by_label("Current password").fill(current)
    page.get_by_label("New password", exact=True).fill(new)
    page.get_by_label("New password again").fill(new)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status")).to_contain_text("password has been changed")


def logout(page):
    page.get_by_role("button", name="Logout").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()


def tab(page, name):
    """Opens a tab of the navigation bar by its name."""
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True).click()
    expect(page.get_by_role("link", name=name, exact=True)).to_have_attribute("aria-current", "page")


def shot(page, name):
    """Saves a full-page screenshot as SHOTS/name.png."""
    os.makedirs(SHOTS, exist_ok=True)
    path = os.path.join(SHOTS, f"{name}.png")
    page.screenshot(path=path, full_page=True)
    ok(f"screenshot {path}")
    return path


def banner(page):
    """The error banner (role=alert) of the page."""
    return page.locator("#error-banner")


def main(fn):
    """Runs fn() and turns a failure into a message and exit status 1."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - any failure fails the script
        print(f"FAILED: {type(e).__name__}: {e}", flush=True)
        sys.exit(1)
    print("DONE", flush=True)


def basic_auth(user=None, password=None):
    """An `Authorization: Basic` value, for scripts' own API calls."""
    import base64

    raw = f"{user or USER}:{password if password is not None else PASSWORD}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def throttle_uploads(page, bytes_per_sec):
    """Limits the page's upload rate through the DevTools protocol (-1: no limit), so a
    test can see an upload in flight on a fast loopback link."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0,
        "downloadThroughput": -1, "uploadThroughput": bytes_per_sec,
    })
    return cdp
