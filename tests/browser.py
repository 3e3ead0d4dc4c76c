"""Debian's chromium, headless, for the tests of the HTML pages the project writes (the evaluation report, the
settings preview): a page that collects console errors and page errors."""
import shutil

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def open_page(playwright, errors: list[str]):
    """A new 1400x900 page in a fresh headless chromium; its console errors and uncaught exceptions are added to
    `errors`. Close it with page.context.browser.close()."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"])
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page
