"""The Notifications tab: a refused webhook address shows the banner; a webhook is
added (its secret shown once), its test message appears in the deliveries table with
the failed attempt; email settings are saved (the password never shown back); a
subscription is added and removed; a test email is queued."""

import re

from playwright.sync_api import expect

import odsui
from odsui import ok


def run():
    with odsui.browser() as b:
        page = odsui.new_page(b)
        odsui.login(page)
        odsui.tab(page, "Notifications")
        expect(page).to_have_title("ODS : Notifications")

        add = page.get_by_role("form", name="Add a webhook")
        add.get_by_label("URL").fill("http://169.254.169.254/latest")
        add.get_by_role("button", name="Add webhook").click()
        expect(odsui.banner(page)).to_contain_text("169.254.169.254")
        ok("a metadata address is refused with the reason")

        page.goto("/notifications")
        add = page.get_by_role("form", name="Add a webhook")
        add.get_by_label("URL").fill("http://127.0.0.1:9/hook")
        add.get_by_label("Events").fill("package.public, ods.test")
        add.get_by_role("button", name="Add webhook").click()
        expect(page.get_by_role("status")).to_contain_text("whsec_")
        ok("the webhook is added and its secret shown once")
        secret = re.search(r"whsec_[A-Za-z0-9+/=]{40,}", page.get_by_role("status").inner_text()).group(0)
        page.reload()
        assert secret not in page.content(), "the secret is shown once only"
        ok("the secret is not shown again")

        hook = page.get_by_role("article", name="Webhook http://127.0.0.1:9/hook")
        expect(hook).to_contain_text("ods.test, package.public")
        hook.get_by_role("button", name="Send test").click()
        expect(page.get_by_role("status")).to_contain_text("Test message queued")
        table = page.get_by_role("table", name="Deliveries to http://127.0.0.1:9/hook")
        for _ in range(50):
            page.reload()
            if re.search(r"ods\.test\s+pending\s+[1-9]", table.inner_text()):
                break
            page.wait_for_timeout(200)
        expect(table).to_contain_text("ods.test")
        expect(table).to_contain_text("pending")
        ok(f"the test delivery and its failed attempt are listed: {table.locator('tbody tr').first.inner_text()}")
        odsui.shot(page, "notifications-webhooks")

        smtp = page.get_by_role("form", name="SMTP settings")
        smtp.get_by_label("SMTP host").fill("127.0.0.1")
        smtp.get_by_label("Port").fill("2525")
        smtp.get_by_label("Security").select_option("none")
        smtp.get_by_label("Password").fill("ui-smtp-pass-1")
        smtp.get_by_label("From").fill("ODS <ods@example.com>")
        smtp.get_by_role("button", name="Save email settings").click()
        expect(page.get_by_role("status")).to_contain_text("Email settings saved")
        smtp = page.get_by_role("form", name="SMTP settings")
        expect(smtp.get_by_label("SMTP host")).to_have_value("127.0.0.1")
        expect(smtp).to_contain_text("stored; empty keeps it")
        assert "ui-smtp-pass-1" not in page.content(), "the password is never sent back"
        ok("email settings saved; the password is stored and not shown")

        sub = page.get_by_role("form", name="Add a subscription")
        sub.get_by_label("Recipients").fill("ops@example.com, dev@example.com")
        sub.get_by_label("Events").fill("*")
        sub.get_by_role("button", name="Add subscription").click()
        expect(page.get_by_role("status")).to_contain_text("Subscription added")
        subs = page.get_by_role("table", name="Email subscriptions")
        expect(subs).to_contain_text("dev@example.com, ops@example.com")
        ok("a subscription is added")
        sub = page.get_by_role("form", name="Add a subscription")
        sub.get_by_label("Recipients").fill("not-an-address")
        sub.get_by_role("button", name="Add subscription").click()
        expect(odsui.banner(page)).to_contain_text("not-an-address")
        ok("a bad recipient shows the banner")

        page.goto("/notifications")
        test = page.get_by_role("form", name="Send a test email")
        test.get_by_label("Send a test email to").fill("ops@example.com")
        test.get_by_role("button", name="Send test email").click()
        expect(page.get_by_role("status")).to_contain_text("Test email queued")
        ok("a test email is queued")
        odsui.shot(page, "notifications-email")

        page.get_by_role("table", name="Email subscriptions").get_by_role("button", name="Remove").click()
        expect(page.get_by_role("status")).to_contain_text("Subscription removed")
        expect(page.get_by_role("table", name="Email subscriptions")).to_contain_text("No subscriptions yet")
        ok("the subscription is removed")
        odsui.assert_no_page_errors(page)


odsui.main(run)
