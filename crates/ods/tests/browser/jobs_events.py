"""Jobs tab: a dead job with its attempts and last error, filtered by state; Retry runs
it again and its row turns done without a reload. Events tab: filtered by kind and by
package, paged forward.

Extra environment: ODS_JOB (the dead job's id), ODS_PACKAGE (a package uploaded),
ODS_EVENTS (how many events the server has at least)."""

import os

from playwright.sync_api import expect

import odsui
from odsui import ok

JOB = os.environ["ODS_JOB"]
PKG = os.environ["ODS_PACKAGE"]
EVENTS = int(os.environ["ODS_EVENTS"])


def run():
    with odsui.browser() as b:
        page = odsui.new_page(b)
        odsui.login(page)
        odsui.tab(page, "Jobs")
        page.get_by_label("State").select_option("dead")
        page.get_by_role("button", name="Filter").click()
        row = page.locator(f'tr[data-job="{JOB}"]')
        expect(row).to_contain_text("dead")
        expect(row).to_contain_text("5 / 5")
        expect(row).to_contain_text("injected by the test")
        for r in page.locator("#jobs-table tbody tr").all():
            expect(r.locator("td").nth(2)).to_contain_text("dead")
        ok("the dead job shows its state, attempts and last error; the filter keeps dead jobs")
        odsui.shot(page, "jobs")
        page.get_by_label("State").select_option("")
        page.get_by_label("Kind").fill("sweep")
        page.get_by_role("button", name="Filter").click()
        row = page.locator(f'tr[data-job="{JOB}"]')
        page.evaluate("window.odsNoReload = true")
        row.get_by_role("button", name=f"Retry job {JOB}").click()
        expect(page.get_by_role("status")).to_contain_text(f"Job {JOB} (sweep) queued to run now")
        page.evaluate("window.odsNoReload = true")
        row = page.locator(f'tr[data-job="{JOB}"]')
        expect(row.locator("td").nth(2)).to_contain_text("done", timeout=20000)
        assert page.evaluate("window.odsNoReload") is True, "the page was reloaded"
        expect(row.get_by_role("button", name=f"Retry job {JOB}")).to_have_count(0)
        ok("Retry runs the job again and its row turns done without a reload")

        odsui.tab(page, "Events")
        rows = page.locator("#events-table tbody tr")
        expect(rows).to_have_count(50)
        page.get_by_role("link", name="Next page").click()
        expect(rows).to_have_count(EVENTS - 50)
        expect(page.get_by_role("link", name="First page")).to_be_visible()
        ok(f"events are paged: 50, then {EVENTS - 50}")
        page.goto("/events")
        page.get_by_label("Package").fill(PKG)
        page.get_by_role("button", name="Filter").click()
        rows = page.locator("#events-table tbody tr")
        # uploaded, public, and rollout_complete (a lone server completes its own rollout)
        expect(rows).to_have_count(3)
        for r in rows.all():
            expect(r).to_contain_text(PKG)
        ok(f"the package filter keeps {PKG}'s 3 events")
        page.get_by_label("Kind").fill("package.public")
        page.get_by_role("button", name="Filter").click()
        expect(rows).to_have_count(1)
        expect(rows.first.locator("td").nth(2)).to_have_text("package.public")
        odsui.shot(page, "events")
        page.goto("/events?kind=package.uploaded")
        for r in page.locator("#events-table tbody tr").all():
            expect(r.locator("td").nth(2)).to_have_text("package.uploaded")
        ok("the kind filter keeps only that kind")
        odsui.assert_no_page_errors(page)


odsui.main(run)
