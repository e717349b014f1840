"""The Jamf tab: the enrollment warning beside the download-auth choice, adding an
instance through the form, the package record turning synced, Reconcile now, the
drift report; and the Admin tab's download-auth choice with the same warning.
Environment: ODS_JAMF_URL (the fake Jamf Pro), ODS_JAMF_USER, ODS_JAMF_PASS."""
import os
import time

from playwright.sync_api import expect

import odsui
from odsui import URL, ok


def run():
    with odsui.browser() as b:
        page = odsui.new_page(b)
        odsui.login(page)
        expect(page).to_have_url(f"{URL}/packages")
        odsui.tab(page, "Jamf")
        expect(page.locator("#ade-warning")).to_contain_text(
            "automated device enrollment cannot sit behind authentication"
        )
        ok("the Jamf tab warns about enrollment packages behind authentication")
        page.get_by_label("Name (empty: the URL's host)").fill("Fake Jamf")
        page.get_by_label("Jamf Pro URL").fill(os.environ["ODS_JAMF_URL"])
        page.get_by_label("User name or client id").fill(os.environ["ODS_JAMF_USER"])
        page.get_by_label("Password or client secret").fill(os.environ["ODS_JAMF_PASS"])
        page.get_by_role("button", name="Add instance").click()
        expect(page.get_by_role("status")).to_contain_text("Added Fake Jamf")
        expect(page.get_by_role("heading", name="Fake Jamf")).to_be_visible()
        ok("an instance is added through the form")
        records = page.get_by_role("table", name="Package records of Fake Jamf")
        deadline = time.time() + 30
        while time.time() < deadline:
            if records.count() and "synced" in records.inner_text():
                break
            time.sleep(0.5)
            page.reload()
        expect(records).to_contain_text("ui.pkg")
        expect(records).to_contain_text("synced")
        ok("the package record shows synced with its record id")
        page.get_by_role("button", name="Reconcile Fake Jamf now").click()
        expect(page.get_by_role("status")).to_contain_text("Checking every record of Fake Jamf")
        ok("Reconcile now queues a check")
        deadline = time.time() + 30
        drift = page.get_by_role("table", name="Drift of Fake Jamf")
        while time.time() < deadline:
            page.reload()
            if drift.count() and "ghost.pkg" in drift.inner_text():
                break
            time.sleep(0.5)
        expect(drift).to_contain_text("file missing here")
        ok("the drift report lists a record whose file is missing here")
        odsui.shot(page, "jamf")
        odsui.tab(page, "Admin")
        page.get_by_role("button", name="Edit").click()
        select = page.get_by_label("Download auth")
        expect(select.locator("option[value=jwt]")).to_have_count(1)
        expect(page.locator("#ade-hint")).to_contain_text("automated device enrollment")
        ok("the download-auth choice offers jwt and carries the warning")
        odsui.assert_no_page_errors(page)


odsui.main(run)
