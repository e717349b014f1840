"""A viewer on the Network, Users, Account, Jobs and Events tabs: no register form, no
Unregister, no speed limit, no Users tab, no Retry; their own tokens work. The server
refuses the admin actions anyway (403 with a valid session and CSRF token), and refuses
a POST without the token or from another origin.

Extra environment: ODS_PEER_ID (a registered peer), ODS_JOB (a dead job)."""

import os

from playwright.sync_api import expect

import odsui
from odsui import URL, ok

PEER = os.environ["ODS_PEER_ID"]
JOB = os.environ["ODS_JOB"]


def run():
    with odsui.browser() as b:
        page = odsui.new_page(b, odsui.TABLET)
        odsui.login(page)
        nav = page.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name="Users")).to_have_count(0)
        odsui.tab(page, "Network")
        expect(page.locator("#peers-table tbody tr")).to_have_count(1)
        expect(page.get_by_role("button", name="Register")).to_have_count(0)
        expect(page.get_by_role("button", name="Unregister B")).to_have_count(0)
        expect(page.get_by_role("button", name="Save limit")).to_have_count(0)
        ok("the Network tab shows the peers but no register, unregister or speed limit")
        odsui.shot(page, "network-viewer")
        odsui.tab(page, "Jobs")
        expect(page.locator(f'tr[data-job="{JOB}"]')).to_contain_text("dead")
        expect(page.get_by_role("button", name=f"Retry job {JOB}")).to_have_count(0)
        ok("the Jobs tab has no Retry")
        odsui.shot(page, "jobs-viewer")
        odsui.tab(page, "Events")
        expect(page.locator("#events-table")).to_be_visible()
        odsui.tab(page, "Account")
        expect(page.get_by_label("For user")).to_have_count(0)
        expect(page.get_by_role("link", name="Every user's tokens")).to_have_count(0)
        page.get_by_label("Token name").fill("viewer-read")
        page.get_by_role("button", name="Create token").click()
        expect(page.get_by_label("The new token")).to_be_visible()
        ok("a viewer makes their own token, for nobody else")
        odsui.shot(page, "account-viewer")
        page.goto("/users")
        expect(odsui.banner(page)).to_contain_text("not allowed")
        ok("/users is refused to a viewer, in words")

        csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
        same = {"Origin": URL}
        forged = [
            ("/network/unregister", {"id": PEER}),
            ("/network/register", {"url": "http://127.0.0.1:9", "iss_id": "x" * 32, "key": "k"}),
            ("/network/rate", {"id": PEER, "rate_limit": "2048"}),
            ("/users/create", {"username": "mallory", "password": "mallory-pass-1",
                               "confirm": "mallory-pass-1", "role": "admin"}),
            ("/users/role", {"username": odsui.USER, "role": "admin"}),
            ("/users/password", {"username": "admin", "password": "taken-over-1"}),
            ("/users/delete", {"username": "admin"}),
            ("/jobs/retry", {"id": JOB}),
        ]
        for path, form in forged:
            r = page.request.post(f"{URL}{path}", form={"csrf": csrf, **form}, headers=same,
                                  max_redirects=0)
            assert r.status == 403, (path, r.status, r.text()[:300])
            assert "not allowed" in r.text(), (path, r.text()[:300])
            assert '"error"' not in r.text(), path
        ok(f"the server refuses a viewer's {len(forged)} admin actions (403, in words)")
        # Without the CSRF token, or from another origin: refused before any handler.
        r = page.request.post(f"{URL}/account/tokens", form={"name": "no-csrf"}, headers=same,
                              max_redirects=0)
        assert r.status == 403, r.status
        r = page.request.post(f"{URL}/account/tokens", form={"csrf": csrf, "name": "evil"},
                              headers={"Origin": "http://evil.example"}, max_redirects=0)
        assert r.status == 403, r.status
        page.goto("/account")
        expect(page.locator('tr[data-token="no-csrf"]')).to_have_count(0)
        expect(page.locator('tr[data-token="evil"]')).to_have_count(0)
        ok("a token-less or cross-origin POST is refused and makes nothing")
        odsui.assert_no_page_errors(page)


odsui.main(run)
