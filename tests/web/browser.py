"""The front page and /status in a real browser: Debian's chromium, headless, driven by
selenium through Debian's chromedriver (selenium's own manager never downloads anything:
SE_OFFLINE=1). Used by test_web.py's browser check; each function takes a driver from
`session()` and saves a screenshot of the whole page (the README's pictures).

The hooks it relies on are the page's stable ones (crates/model/src/front.rs):
`form.try[data-path=...]`, its `button[type=submit]`, its `pre.answer` whose `data-status`
is set once the answer is shown; and on /status `table#workers tr[data-pid]`.
"""

import contextlib
import glob
import json
import os
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

WIDTH = 1280


@contextlib.contextmanager
def session():
    """A headless chromium, quit on exit."""
    os.environ["SE_OFFLINE"] = "1"
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                f"--window-size={WIDTH},900", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"),
                              options=options)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver, path):
    """The whole page: the viewport made as tall as the document for the picture (a
    headless window cannot be resized past the screen, the emulated viewport can)."""
    height = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]["height"]
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": WIDTH, "height": min(max(int(height), 600), 10000),
        "deviceScaleFactor": 1, "mobile": False,
    })
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    driver.save_screenshot(path)
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    print("screenshot:", path)


def submit(driver, path):
    """Sends the form for `path` as the page filled it; (status, answer text)."""
    form = driver.find_element(By.CSS_SELECTOR, f'form.try[data-path="{path}"]')
    answer = form.find_element(By.CSS_SELECTOR, "pre.answer")
    form.find_element(By.CSS_SELECTOR, 'button[type="submit"]').click()
    WebDriverWait(driver, 30).until(lambda _: answer.get_attribute("data-status"))
    return answer.get_attribute("data-status"), answer.text


def body_of(status, text, what):
    if status != "200":
        raise SystemExit(f"FAILED: {what} answered {status}: {text}")
    # The first line is the status and the time; the JSON follows.
    return json.loads(text.split("\n", 1)[1])


def front_iris(driver, base, shot):
    """Opens / on the embedded iris, sends the V2 form's example; the label's data."""
    driver.get(base + "/")
    origins = {e.text for e in driver.find_elements(By.CSS_SELECTOR, ".curl .origin")}
    if origins != {base}:
        raise SystemExit(f"FAILED: the curl lines name {origins}, not {base}")
    status, text = submit(driver, "/v2/models/iris/infer")
    answer = body_of(status, text, "the iris V2 form")
    screenshot(driver, shot)
    return next(o["data"] for o in answer["outputs"] if o["name"] == "label")


def front_route(driver, base, path, shot):
    """Opens /, sends the form of the manifest route `path`; the answer."""
    driver.get(base + "/")
    status, text = submit(driver, path)
    answer = body_of(status, text, f"the {path} form")
    screenshot(driver, shot)
    return answer


def workers_of(master):
    """The master's children, from /proc (every thread's list: the master has one)."""
    pids = set()
    for path in glob.glob(f"/proc/{master}/task/*/children"):
        with open(path) as f:
            pids.update(int(p) for p in f.read().split())
    return sorted(pids)


def status(driver, base, master, shot):
    """Opens /status: (the pids its table shows, the master's children); None while
    /status answers 404 (before the status page exists)."""
    try:
        urllib.request.urlopen(base + "/status", timeout=30).close()
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise
    driver.get(base + "/status")
    rows = driver.find_elements(By.CSS_SELECTOR, "table#workers tr[data-pid]")
    shown = sorted(int(r.get_attribute("data-pid")) for r in rows)
    screenshot(driver, shot)
    return shown, workers_of(master)
