"""Network tab: server A registers with server B through the forms (the ISS ID and the
key read from B's Admin tab, the key behind Reveal); a wrong key first shows the error
banner in words; both tables then list the other server with its link health; a package
uploaded on A turns Public on B's Packages tab without a reload; Unregister asks first.

Extra environment: ODS_URL_B (server B), ODS_PACKAGE (the filename to upload on A)."""

import os

from playwright.sync_api import expect

import odsui
from odsui import URL, ok

URL_B = os.environ["ODS_URL_B"].rstrip("/")
PKG = os.environ["ODS_PACKAGE"]


def run():
    with odsui.browser() as b:
        # B's Admin tab gives its ISS ID and, behind Reveal, its key.
        pb = odsui.new_page(b)
        pb.goto(f"{URL_B}/")
        pb.get_by_label("Username").fill(odsui.USER)
        pb.get_by_label("Password", exact=True).fill(odsui.PASSWORD)
        pb.get_by_role("button", name="Log in").click()
        pb.goto(f"{URL_B}/admin")
        iss = pb.locator("table td.mono").first.inner_text().strip()
        pb.get_by_role("button", name="Reveal").click()
        expect(pb.get_by_role("button", name="Reveal")).to_have_count(0)
        key = pb.locator("#key-value").inner_text().strip()
        assert len(iss) >= 16 and len(key) >= 16, (iss, key)
        ok("B's ISS ID and key read from its Admin tab")

        pa = odsui.new_page(b)
        odsui.login(pa)
        odsui.tab(pa, "Network")
        expect(pa.locator("#no-peers")).to_be_visible()
        # A wrong key: the banner says so, in words, and nothing is registered.
        pa.get_by_label("URL").fill(URL_B)
        pa.get_by_label("ISS ID").fill(iss)
        pa.get_by_label("Key").fill("not-the-key-" + key[:8])
        pa.get_by_role("button", name="Register", exact=True).click()
        alert = pa.get_by_role("alert")
        expect(alert).to_be_visible()
        expect(alert).to_contain_text("Registration refused: wrong ISS ID or key")
        text = alert.inner_text()
        assert "{" not in text and '"error"' not in text, text
        expect(pa.get_by_label("URL")).to_have_value(URL_B)
        expect(pa.locator("#no-peers")).to_be_visible()
        ok(f"a wrong key shows the banner: {text}")
        odsui.shot(pa, "network-wrong-key")
        # Unreachable: a port nobody listens on.
        pa.get_by_label("URL").fill("http://127.0.0.1:9")
        pa.get_by_label("ISS ID").fill(iss)
        pa.get_by_label("Key").fill(key)
        pa.get_by_role("button", name="Register", exact=True).click()
        expect(pa.get_by_role("alert")).to_contain_text("cannot be reached")
        ok("an unreachable URL shows the banner")
        # The right key.
        pa.get_by_label("URL").fill(URL_B)
        pa.get_by_label("ISS ID").fill(iss)
        pa.get_by_label("Key").fill(key)
        pa.get_by_role("button", name="Register", exact=True).click()
        expect(pa.get_by_role("status")).to_contain_text("Registered with B")
        row = pa.locator("#peers-table tbody tr")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("B")
        expect(row).to_contain_text(URL_B)
        expect(row.locator("td").nth(5)).to_contain_text("OK", timeout=20000)
        ok("A lists B, link OK")
        # Registering again: already registered, in words.
        pa.get_by_label("URL").fill(URL_B)
        pa.get_by_label("ISS ID").fill(iss)
        pa.get_by_label("Key").fill(key)
        pa.get_by_role("button", name="Register", exact=True).click()
        expect(pa.get_by_role("alert")).to_contain_text("Already registered")
        ok("registering twice shows 'Already registered'")
        # The link's speed limit (PATCH /api/admin/registered_ods/{id}): too low is
        # refused in words; a valid one shows in the table.
        pa.goto("/network")
        pa.locator("#rate-value").evaluate("e => e.removeAttribute('min')")
        pa.get_by_label("Bytes per second").fill("100")
        pa.get_by_role("button", name="Save limit").click()
        expect(odsui.banner(pa)).to_contain_text("at least 1024")
        pa.goto("/network")
        pa.get_by_label("Bytes per second").fill("2000000")
        pa.get_by_role("button", name="Save limit").click()
        expect(pa.get_by_role("status")).to_contain_text("Speed limit of B: 2.0 MB/s")
        expect(pa.locator("#peers-table tbody tr")).to_contain_text("2.0 MB/s")
        ok("the link's speed limit is refused below 1024 and shown once set")
        odsui.shot(pa, "network")

        # B's Network tab lists A (the registration is mutual) without a reload.
        pb.goto(f"{URL_B}/network")
        expect(pb.locator("#peers-table tbody tr")).to_contain_text("A")
        ok("B lists A")

        # B's Packages tab is open while A gets a package; B's row turns Public live.
        pb.goto(f"{URL_B}/packages")
        expect(pb.locator(f'tr[data-filename="{PKG}"]')).to_have_count(0)
        pb.evaluate("window.odsNoReload = true")
        r = pa.request.post(f"{URL}/api/admin/upload",
                            multipart={"file": {"name": PKG, "mimeType": "application/octet-stream",
                                                "buffer": os.urandom(300_000)},
                                       "stage": "Dev"},
                            headers={"Authorization": odsui.basic_auth()})
        assert r.status == 201, (r.status, r.text())
        row_b = pb.locator(f'tr[data-filename="{PKG}"]')
        expect(row_b).to_contain_text("Public", timeout=45000)
        assert pb.evaluate("window.odsNoReload") is True, "B's page was reloaded"
        ok("the package uploaded on A turns Public on B's Packages tab without a reload")
        odsui.shot(pb, "network-b-packages")

        # Unregister asks first; dismissing keeps the link, accepting ends it.
        pa.goto("/network")
        pa.once("dialog", lambda d: d.dismiss())
        pa.get_by_role("button", name="Unregister B").click()
        expect(pa.locator("#peers-table tbody tr")).to_have_count(1)
        pa.once("dialog", lambda d: d.accept())
        pa.get_by_role("button", name="Unregister B").click()
        expect(pa.get_by_role("status")).to_contain_text("Unregistered")
        expect(pa.locator("#no-peers")).to_be_visible()
        ok("Unregister asks, then removes B")
        odsui.assert_no_page_errors(pa)
        odsui.assert_no_page_errors(pb)


odsui.main(run)
