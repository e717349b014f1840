"""First login with the default admin / ods1234!: every page leads to the password
change until a new one is set; then the tabs work; logout ends the session."""

from playwright.sync_api import expect

import odsui
from odsui import URL, ok


def run():
    new = odsui.PASSWORD
    with odsui.browser() as b:
        page = odsui.new_page(b)
        page.goto("/")
        expect(page).to_have_title("ODS : Log in")
        odsui.shot(page, "login")
        odsui.login(page, "admin", "wrong-password")
        expect(odsui.banner(page)).to_contain_text("Wrong username or password")
        ok("a wrong password shows the banner")
        odsui.login(page, "admin", "ods1234!")
        expect(page).to_have_url(f"{URL}/account/password")
        expect(page.get_by_role("link", name="Packages")).to_have_count(0)
        odsui.shot(page, "first-login")
        # Any other page sends the browser back to the password change.
        for path in ["/admin", "/admin/system", "/"]:
            page.goto(path)
            expect(page).to_have_url(f"{URL}/account/password")
        ok("before the change every page leads to the password form")
        # The default password cannot be kept.
        page.get_by_label("Current password").fill("ods1234!")
        page.get_by_label("New password", exact=True).fill("ods1234!")
        page.get_by_label("New password again").fill("ods1234!")
        page.get_by_role("button", name="Change password").click()
        expect(odsui.banner(page)).to_be_visible()
        ok(f"keeping the default is refused: {odsui.banner(page).inner_text()}")
        page.goto("/account/password")
        odsui.change_first_password(page, "ods1234!", new)
        expect(page).to_have_url(f"{URL}/admin")
        ok("the new password is set and the Admin tab opens")
        odsui.logout(page)
        page.goto("/admin")
        expect(page.get_by_role("button", name="Log in")).to_be_visible()
        ok("after logout the pages need a login")
        odsui.login(page, "admin", new)
        expect(page).to_have_url(f"{URL}/admin")
        ok("the new password logs in")
        odsui.assert_no_page_errors(page)


odsui.main(run)
