"""Cancelling an upload: with the browser's upload throttled (Chromium's network
emulation), the bar shows bytes and percent as they go, Cancel stops the upload, the
page says so, and no package appears.

Extra environment: ODS_UPLOAD (a file of a few MB)."""

import os

from playwright.sync_api import expect

import odsui
from odsui import ok


def run():
    path = os.environ["ODS_UPLOAD"]
    with odsui.browser() as b:
        page = odsui.new_page(b)
        odsui.login(page)
        odsui.throttle_uploads(page, 512 * 1024)
        page.get_by_label("Select File").set_input_files(path)
        page.get_by_role("button", name="Upload").click()
        text = page.locator("#up-text")
        expect(text).to_contain_text("%", timeout=20000)
        expect(text).to_contain_text(" of ")
        ok(f"the bar shows bytes and percent: {text.inner_text()}")
        page.get_by_role("button", name="Cancel").click()
        expect(text).to_have_text("Upload cancelled.")
        expect(odsui.banner(page)).to_contain_text("cancelled")
        expect(page.get_by_role("button", name="Upload")).to_be_enabled()
        ok("Cancel stops the upload and says so")
        page.reload()
        name = os.path.basename(path)
        expect(page.locator(f'tr[data-filename="{name}"]')).to_have_count(0)
        ok("no package was made")
        odsui.assert_no_page_errors(page)


odsui.main(run)
