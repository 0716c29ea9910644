"""The live sale view in a real browser: headless Chromium (Debian's chromium and
chromium-driver, driven by python3-selenium) opens /status, waits for the page's own text
to show a coupon and its count, sees it follow grabs made through the API, and keeps a
screenshot. Both deployments. Skipped, with the reason, only where Chromium is missing.

The screenshot goes to the test's temporary directory; with SECKILL_STATUS_SCREENSHOT=PATH
it is also written to PATH (`make status-screenshot` regenerates docs/status-page.png so),
so no run of the suite changes the checkout."""

import os
import shutil
import time
from pathlib import Path

import pytest

from seckill_harness import Client, expect_json, start_fleet

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def chromium_or_skip():
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        pytest.skip(f"no headless browser: {', '.join(missing)} missing "
                    "(Debian packages chromium and chromium-driver)")
    try:
        from selenium import webdriver  # noqa: F401
    except ImportError:
        pytest.skip("python3-selenium is not installed")


@pytest.fixture
def browser(tmp_path):
    chromium_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,940", "--hide-scrollbars", "--no-first-run",
                "--disable-extensions", "--disable-background-networking",
                f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait_until(what, predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"the page never showed {what}")
        time.sleep(0.1)


def row_text(driver, name):
    """The text the page shows for coupon `name` ("7 of 10 left"), or None. Read in one
    script call: the page may redraw its rows between two calls of the driver."""
    rows = driver.execute_script(
        "return Array.from(document.querySelectorAll('#coupons .coupon')).map(function (row) {"
        "  return [row.querySelector('.name').innerText, row.querySelector('.left').innerText];"
        "});")
    return next((left for shown, left in rows if shown == name), None)


def shows(driver, name, text):
    return lambda: row_text(driver, name) == text


def test_page_follows_the_sale(start_server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    fleet = start_fleet(start_server)
    client = Client(fleet)
    seller, stoken = client.new_user("saler", prefix="shop")
    # A name that is markup: the page must show it as text.
    gold = "Gold <b>50% off & more"
    coupons = {gold: 10, "Silver 20% off": 40, "Bronze 5% off": 25, "Free shipping": 12}
    for name, amount in coupons.items():
        client.new_coupon(stoken, seller, name, amount=amount)
    customers = [client.new_user("customer")[1] for _ in range(30)]

    def grab(name, tokens):
        for token in tokens:
            r = client.grab(token, seller, name)
            assert r.status_code in (201, 204), r.status_code

    grab(gold, customers[:3])
    browser.get(fleet.url + "/status")
    assert browser.title.startswith("seckill")
    wait_until("gold at 7 of 10", shows(browser, gold, "7 of 10 left"))
    assert not browser.find_elements(By.CSS_SELECTOR, "#coupons b"), \
        "a coupon name was parsed as HTML"

    # More grabs through the API, over a few seconds: the page follows each round by itself.
    left = 7
    for round_ in range(3):
        grab(gold, customers[3 + 2 * round_:5 + 2 * round_])
        grab("Silver 20% off", customers[10 * round_:10 * round_ + 9])
        grab("Bronze 5% off", customers[20 + round_ * 3:23 + round_ * 3])
        grab(gold, customers[:2])  # already held
        left -= 2
        wait_until(f"gold at {left} of 10", shows(browser, gold, f"{left} of 10 left"))
    # The last one goes, and the next four customers find it sold out; a grab of a coupon
    # that does not exist is rejected.
    grab(gold, customers[9:14])
    grab("No such coupon", customers[:1])
    wait_until("gold sold out", shows(browser, gold, "0 of 10 left"))
    assert row_text(browser, "Silver 20% off") == "13 of 40 left"
    assert row_text(browser, "Bronze 5% off") == "16 of 25 left"
    assert row_text(browser, "Free shipping") == "12 of 12 left"

    # The outcome totals of the minute: 3 + 7 + 27 + 9 granted, 6 already held, 4 sold out.
    wait_until("the minute's totals",
               lambda: [browser.find_element(By.ID, f"total-{outcome}").text for outcome in
                        ("granted", "sold_out", "already_held", "rejected")]
               == ["46", "4", "6", "1"])
    assert browser.find_element(By.ID, "p99").text not in ("", "–")
    assert browser.find_elements(By.CSS_SELECTOR, "#chart rect"), "no bar in the chart"
    assert "live" in browser.find_element(By.ID, "state").get_attribute("class")

    # Nothing failed in the page: no script error, no request refused by its policy.
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == [], errors

    time.sleep(0.8)  # let the bars finish sliding (a 0.6 s transition) for the picture
    shot = tmp_path / "status-page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10000
    wanted = os.environ.get("SECKILL_STATUS_SCREENSHOT")
    if wanted:
        Path(wanted).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, wanted)


def test_page_filters_by_seller(start_server, browser):
    from selenium.webdriver.common.by import By

    srv = start_fleet(start_server)
    client = Client(srv)
    shop, shop_token = client.new_user("saler")
    other, other_token = client.new_user("saler")
    mine = client.new_coupon(shop_token, shop, amount=3)
    theirs = client.new_coupon(other_token, other, amount=4)
    _, token = client.new_user("customer")
    expect_json(client.grab(token, other, theirs), 201, "")
    browser.get(srv.url + "/status")
    wait_until("both coupons", lambda: row_text(browser, mine) == "3 of 3 left"
               and row_text(browser, theirs) == "3 of 4 left")
    field = browser.find_element(By.ID, "seller")
    field.send_keys(other)
    browser.find_element(By.CSS_SELECTOR, "#filter button").click()
    wait_until("the other seller's alone",
               lambda: row_text(browser, theirs) == "3 of 4 left"
               and row_text(browser, mine) is None)
    assert f"seller={other}" in browser.current_url
