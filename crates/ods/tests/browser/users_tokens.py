"""Users tab and Account tab: an admin creates a user, changes its role and resets its
password (the user must then choose their own), the user makes an API token (shown once,
working on the API) and revokes it (refused by the API from then on), changes their own
password; the admin deletes the user after a confirmation.

Prints `TOKEN <value>` of the revoked token for the Rust side to check."""

from playwright.sync_api import expect

import odsui
from odsui import URL, ok

CAROL = "carol"


def api_status(page, token):
    r = page.request.get(f"{URL}/api/admin/about", headers={"Authorization": f"Bearer {token}"})
    return r.status


def run():
    with odsui.browser() as b:
        admin = odsui.new_page(b)
        odsui.login(admin)
        odsui.tab(admin, "Users")
        # A refused creation: the reason in words, the name kept.
        admin.get_by_label("Username").fill(CAROL)
        admin.get_by_label("Password", exact=True).fill("short")
        admin.get_by_label("Password again").fill("short")
        admin.locator("#u-pass").evaluate("e => e.removeAttribute('minlength')")
        admin.locator("#u-confirm").evaluate("e => e.removeAttribute('minlength')")
        admin.get_by_role("button", name="Create user").click()
        expect(odsui.banner(admin)).to_be_visible()
        assert "{" not in odsui.banner(admin).inner_text()
        expect(admin.get_by_label("Username")).to_have_value(CAROL)
        ok(f"a too-short password is refused in words: {odsui.banner(admin).inner_text()}")
        admin.get_by_label("Password", exact=True).fill("carol-first-pass")
        admin.get_by_label("Password again").fill("carol-first-pass")
        admin.get_by_label("Role", exact=True).select_option("uploader")
        admin.get_by_role("button", name="Create user").click()
        expect(admin.get_by_role("status")).to_contain_text("User carol created (uploader)")
        row = admin.locator(f'tr[data-user="{CAROL}"]')
        expect(row.get_by_label("Role of carol", exact=True)).to_have_value("uploader")
        ok("the admin creates carol as an uploader")
        row.get_by_label("Role of carol", exact=True).select_option("viewer")
        row.get_by_role("button", name="Save role of carol").click()
        expect(admin.get_by_role("status")).to_contain_text("carol is now viewer")
        expect(admin.locator(f'tr[data-user="{CAROL}"]').get_by_label("Role of carol", exact=True)).to_have_value("viewer")
        ok("the admin changes carol's role to viewer")
        row = admin.locator(f'tr[data-user="{CAROL}"]')
        row.get_by_label("New password for carol", exact=True).fill("carol-reset-pass")
        admin.once("dialog", lambda d: d.accept())
        row.get_by_role("button", name="Reset password of carol").click()
        expect(admin.get_by_role("status")).to_contain_text("Password of carol reset")
        expect(admin.locator(f'tr[data-user="{CAROL}"]')).to_contain_text("must be changed")
        ok("the admin resets carol's password")
        odsui.shot(admin, "users")

        # Carol logs in with the reset password and must choose her own.
        carol = odsui.new_page(b)
        odsui.login(carol, CAROL, "carol-reset-pass")
        odsui.change_first_password(carol, "carol-reset-pass", "carol-own-pass-1")
        nav = carol.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name="Users")).to_have_count(0)
        odsui.tab(carol, "Account")
        expect(carol.locator("#me")).to_have_text(CAROL)
        carol.get_by_label("Token name").fill("ci-uploads")
        carol.get_by_role("button", name="Create token").click()
        value = carol.get_by_label("The new token").input_value()
        assert value.startswith("ods_") and len(value) == 47, value
        expect(carol.get_by_text("shown this once")).to_be_visible()
        expect(carol.locator('tr[data-token="ci-uploads"]')).to_be_visible()
        odsui.shot(carol, "account-new-token")
        assert api_status(carol, value) == 200
        ok("carol's new token is shown and works on the API")
        carol.goto("/account")
        expect(carol.get_by_label("The new token")).to_have_count(0)
        assert value not in carol.content()
        ok("the token is shown once: not on the page again")
        carol.once("dialog", lambda d: d.accept())
        carol.get_by_role("button", name="Revoke ci-uploads").click()
        expect(carol.get_by_role("status")).to_contain_text("Token revoked")
        expect(carol.locator('tr[data-token="ci-uploads"]')).to_have_count(0)
        assert api_status(carol, value) == 401
        print(f"TOKEN {value}", flush=True)
        ok("the revoked token is refused by the API")
        # Her own password, from the Account tab.
        carol.get_by_label("Current password").fill("wrong-current-pass")
        carol.get_by_label("New password", exact=True).fill("carol-own-pass-2")
        carol.get_by_label("New password again").fill("carol-own-pass-2")
        carol.get_by_role("button", name="Change password").click()
        expect(odsui.banner(carol)).to_contain_text("current password")
        odsui.tab(carol, "Account")
        carol.get_by_label("Current password").fill("carol-own-pass-1")
        carol.get_by_label("New password", exact=True).fill("carol-own-pass-2")
        carol.get_by_label("New password again").fill("carol-own-pass-2")
        carol.get_by_role("button", name="Change password").click()
        expect(carol.get_by_role("status")).to_contain_text("password has been changed")
        ok("carol changes her own password (a wrong current one is refused)")
        odsui.tab(carol, "Account")
        odsui.shot(carol, "account")

        # The admin sees every user's tokens and deletes carol after confirming.
        # An admin makes a token for another user and sees every user's tokens.
        odsui.tab(admin, "Account")
        admin.get_by_label("Token name").fill("for-carol")
        admin.get_by_label("For user").fill(CAROL)
        admin.get_by_role("button", name="Create token").click()
        expect(admin.get_by_role("heading", name="for carol")).to_be_visible()
        carol_token = admin.get_by_label("The new token").input_value()
        row = admin.locator('tr[data-token="for-carol"]')
        expect(row).to_contain_text(CAROL)
        admin.goto("/account")
        expect(admin.locator('tr[data-token="for-carol"]')).to_have_count(0)
        admin.get_by_role("link", name="Every user's tokens").click()
        expect(admin.locator('tr[data-token="for-carol"]')).to_contain_text(CAROL)
        assert api_status(admin, carol_token) == 200
        ok("an admin makes a token for carol and lists every user's tokens")
        odsui.shot(admin, "account-admin-all")
        odsui.tab(admin, "Users")
        admin.once("dialog", lambda d: d.dismiss())
        admin.get_by_role("button", name="Delete carol").click()
        expect(admin.locator(f'tr[data-user="{CAROL}"]')).to_have_count(1)
        admin.once("dialog", lambda d: d.accept())
        admin.get_by_role("button", name="Delete carol").click()
        expect(admin.get_by_role("status")).to_contain_text("User carol deleted")
        expect(admin.locator(f'tr[data-user="{CAROL}"]')).to_have_count(0)
        assert api_status(admin, carol_token) == 401
        ok("deleting carol asks first, then removes her (her token stops working)")
        # The last admin cannot be deleted: the refusal in words.
        admin.once("dialog", lambda d: d.accept())
        admin.get_by_role("button", name=f"Delete {odsui.USER}").click()
        expect(odsui.banner(admin)).to_contain_text("at least one admin")
        ok("deleting the last admin is refused in words")
        odsui.assert_no_page_errors(admin)
        odsui.assert_no_page_errors(carol)


odsui.main(run)
