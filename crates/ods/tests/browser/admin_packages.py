"""An admin's day: the Admin tab (edit the settings through the dialog, reveal the
key, System Information refreshing itself), then the Packages tab (upload with the
progress bar reaching 100% and the row turning Public, search, change a stage,
delete, each confirmed), a token-less and a cross-origin POST refused, screenshots of
each tab at laptop and tablet widths.

Extra environment: ODS_KEY (the registration key the API reports), ODS_UPLOAD (a
file to upload), ODS_DOCS_SHOT (where to save the README's Packages screenshot)."""

import os
import re

from playwright.sync_api import expect

import odsui
from odsui import URL, ok


def admin_tab(page):
    odsui.tab(page, "Admin")
    expect(page).to_have_title("ODS : Server Admin")
    settings = page.get_by_role("table").first
    for col in ["Name", "URL", "ISS ID", "Key", "Stage", "Firewalled Mode"]:
        expect(settings.get_by_role("columnheader", name=col, exact=True)).to_be_visible()
    # The key is hidden until Reveal.
    expect(page.locator("#key")).not_to_contain_text(os.environ["ODS_KEY"])
    page.get_by_role("button", name="Reveal").click()
    expect(page.locator("#key-value")).to_have_text(os.environ["ODS_KEY"])
    ok("Reveal shows the key the API reports")
    # The Edit dialog: a URL that does not parse is refused by the form itself...
    page.get_by_role("button", name="Edit").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Name").fill("Branch Office")
    dialog.get_by_label(re.compile("^URL")).fill("not a url")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_visible()
    ok("the dialog refuses a URL that does not parse")
    dialog.get_by_label(re.compile("^URL")).fill("https://ods.example.org:8443")
    dialog.get_by_label("Deploy Stage").select_option("Test")
    dialog.get_by_label("Firewalled Mode").select_option("Enabled")
    dialog.get_by_label("Download auth").select_option("basic")
    dialog.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Settings saved")
    row = settings.get_by_role("row").nth(1)
    expect(row).to_contain_text("Branch Office")
    expect(row).to_contain_text("https://ods.example.org:8443")
    expect(row).to_contain_text("Test")
    expect(row).to_contain_text("Enabled")
    expect(row).to_contain_text("Basic")
    ok("the edited settings are shown")
    # System Information, with the seed's columns, refreshes itself.
    for col in ["CPU Count", "Total Memory", "Disk Space Free", "Network Bytes Received", "System Uptime"]:
        expect(page.get_by_role("columnheader", name=col)).to_be_visible()
    before = page.locator("#uptime").inner_text()
    expect(page.locator("#uptime")).not_to_have_text(before, timeout=15000)
    ok(f"System Uptime refreshed by itself ({before} -> {page.locator('#uptime').inner_text()})")
    odsui.shot(page, "admin")


def upload(page, path):
    odsui.tab(page, "Packages")
    page.get_by_label("Select File").set_input_files(path)
    page.get_by_label("Stage", exact=True).select_option("Dev")
    # About two seconds in flight, so the greyed-out button is seen whatever the machine.
    odsui.throttle_uploads(page, 2 * 1024 * 1024)
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("button", name="Upload")).to_be_disabled()
    ok("the Upload button is greyed out during the upload")
    bar = page.locator("#up-bar")
    expect(bar).to_have_attribute("value", "100", timeout=60000)
    expect(page.locator("#up-text")).to_contain_text("100%")
    ok("the progress bar reached 100%")
    name = os.path.basename(path)
    row = page.locator(f'tr[data-filename="{name}"]')
    expect(row).to_contain_text("Public", timeout=15000)
    expect(row).to_contain_text("Dev")
    expect(row).to_contain_text(re.compile(r"\d+\.\d (KB|MB)"))
    ok("the new row is Public without a reload")
    return name, row


def packages_tab(page, path):
    name, row = upload(page, path)
    for col in ["Filename", "Size", "SHA1 Hash", "State", "Stage"]:
        expect(page.get_by_role("columnheader", name=col, exact=True)).to_be_visible()
    docs = os.environ.get("ODS_DOCS_SHOT")
    if docs:
        page.set_viewport_size({"width": 1280, "height": 720})
        page.screenshot(path=docs)
        ok(f"README screenshot {docs}")
    page.set_viewport_size(odsui.LAPTOP)
    row.get_by_text("SHA-256").click()
    expect(row.locator("details .mono")).to_have_text(re.compile("^[0-9a-f]{64}$"))
    ok("SHA-256 on demand")
    expect(row.get_by_role("button", name=f"Copy share URL of {name}")).to_have_attribute(
        "data-copy", f"{URL}/share/{name}"
    )
    ok("copyable download URLs")
    odsui.shot(page, "packages")
    page.set_viewport_size(odsui.TABLET)
    odsui.shot(page, "packages-tablet")
    page.set_viewport_size(odsui.LAPTOP)
    # Search in the database.
    page.get_by_label("Search filenames").fill("no-such-package")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("No package matches.")).to_be_visible()
    page.get_by_label("Search filenames").fill(name[:6].upper())
    page.get_by_role("button", name="Search").click()
    expect(page.locator(f'tr[data-filename="{name}"]')).to_be_visible()
    ok("search finds the package by part of its name, in any letter case")
    # Change the stage: the confirmation first says no, then yes.
    row = page.locator(f'tr[data-filename="{name}"]')
    row.get_by_label(f"Stage of {name}", exact=True).select_option("Prod")
    page.once("dialog", lambda d: d.dismiss())
    row.get_by_role("button", name=f"Change stage of {name}").click()
    expect(row.locator("td").nth(4)).to_have_text("Dev")
    ok("a dismissed confirmation changes nothing")
    row.get_by_label(f"Stage of {name}", exact=True).select_option("Prod")
    page.once("dialog", lambda d: d.accept())
    row.get_by_role("button", name=f"Change stage of {name}").click()
    expect(page.get_by_role("status")).to_contain_text("now in stage Prod")
    expect(page.locator(f'tr[data-filename="{name}"] td').nth(4)).to_have_text("Prod")
    ok("stage changed to Prod after confirmation")
    # A token-less POST from the page itself, and a cross-origin one, are refused.
    status = page.evaluate(
        """async () => (await fetch('/packages/delete', {method: 'POST',
            headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'id=1'})).status"""
    )
    assert status == 403, status
    ok("a token-less POST is refused (403)")
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    r = page.request.post(
        f"{URL}/packages/delete",
        form={"csrf": csrf, "id": "1"},
        headers={"Origin": "http://evil.example"},
    )
    assert r.status == 403, r.status
    assert "did not come from a page of this server" in r.text(), r.text()
    ok("a cross-origin POST is refused (403) with the reason in words")
    expect(page.locator(f'tr[data-filename="{name}"]')).to_be_visible()
    # Delete, confirmed.
    page.once("dialog", lambda d: d.accept())
    page.locator(f'tr[data-filename="{name}"]').get_by_role("button", name=f"Delete {name}").click()
    expect(page.get_by_role("status")).to_contain_text(f"{name} was deleted")
    expect(page.locator(f'tr[data-filename="{name}"]')).to_have_count(0)
    ok("the package is deleted after confirmation")


def run():
    with odsui.browser() as b:
        page = odsui.new_page(b)
        odsui.login(page)
        expect(page).to_have_url(f"{URL}/packages")
        admin_tab(page)
        packages_tab(page, os.environ["ODS_UPLOAD"])
        odsui.logout(page)
        odsui.assert_no_page_errors(page)


odsui.main(run)
