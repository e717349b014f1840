"""A viewer sees no admin actions (no upload, no Edit, no Reveal, no stage change or
delete, no Users tab), and the server refuses those actions anyway.

Extra environment: ODS_PACKAGE (a package that exists)."""

import os

from playwright.sync_api import expect

import odsui
from odsui import ok


def run():
    name = os.environ["ODS_PACKAGE"]
    with odsui.browser() as b:
        page = odsui.new_page(b)
        odsui.login(page)
        nav = page.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name="Users")).to_have_count(0)
        expect(page.get_by_role("heading", name="Upload a Package")).to_have_count(0)
        row = page.locator(f'tr[data-filename="{name}"]')
        expect(row).to_contain_text("Public")
        expect(page.get_by_role("button", name=f"Delete {name}")).to_have_count(0)
        expect(page.get_by_role("button", name=f"Change stage of {name}")).to_have_count(0)
        ok("the Packages tab has no upload, stage change or delete")
        odsui.shot(page, "packages-viewer")
        odsui.tab(page, "Admin")
        expect(page.get_by_role("button", name="Edit")).to_have_count(0)
        expect(page.get_by_role("button", name="Reveal")).to_have_count(0)
        expect(page.locator("#key")).to_contain_text("admins only")
        ok("the Admin tab has no Edit and no Reveal")
        odsui.shot(page, "admin-viewer")
        # The server refuses anyway, with a valid session and CSRF token.
        csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
        r = page.request.post(f"{odsui.URL}/packages/delete", form={"csrf": csrf, "id": "1"},
                              headers={"Origin": odsui.URL})
        assert r.status == 403, r.status
        assert "not allowed" in r.text() and "uploader" in r.text(), r.text()
        r = page.request.post(f"{odsui.URL}/admin/settings",
                              form={"csrf": csrf, "name": "x", "url": "", "stage": "Dev",
                                    "firewalled": "Disabled", "download_auth": "none"},
                              headers={"Origin": odsui.URL})
        assert r.status == 403, r.status
        r = page.request.get(f"{odsui.URL}/admin/key")
        assert r.status == 403, r.status
        ok("the server refuses a viewer's delete, settings change and key (403)")
        odsui.assert_no_page_errors(page)


odsui.main(run)
