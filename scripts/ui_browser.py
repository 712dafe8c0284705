#!/usr/bin/env python3
"""Clicks through Keyward's web UI in headless Chromium over WebDriver (chromedriver), with only
the standard library: log in with a token, find a device, open its certificate, revoke it, see the
CRL page change. Usage: ui_browser.py BASE_URL TOKEN DEVICE_ID SCREENSHOT_DIR"""
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

BASE, TOKEN, DEVICE, SHOTS = sys.argv[1:5]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


PORT = free_port()
# Its own process group: chromedriver and every Chromium process it starts are stopped together.
driver = subprocess.Popen(["chromedriver", f"--port={PORT}"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True)
WD = f"http://127.0.0.1:{PORT}"


def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(WD + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"{}").get("value")


def check(cond, what):
    """Asserts `cond` (a callable is polled for up to 10 s: pages load after clicks)."""
    if callable(cond):
        deadline = time.time() + 10
        while True:
            try:
                if cond():
                    break
            except (urllib.error.HTTPError, ValueError, IndexError):
                pass
            if time.time() > deadline:
                raise AssertionError(what)
            time.sleep(0.1)
    elif not cond:
        raise AssertionError(what)
    print(f"ok   - browser: {what}")


try:
    for _ in range(100):
        try:
            call("GET", "/status")
            break
        except OSError:
            time.sleep(0.1)
    caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
        "binary": "/usr/bin/chromium",
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"]}}}}
    sid = call("POST", "/session", caps)["sessionId"]
    S = f"/session/{sid}"
    # Elements may appear only once a submitted form's page has loaded.
    call("POST", S + "/timeouts", {"implicit": 10000, "pageLoad": 30000})

    def go(url):
        call("POST", S + "/url", {"url": url})

    def find(css):
        el = call("POST", S + "/element", {"using": "css selector", "value": css})
        return list(el.values())[0]

    def text(css):
        return call("GET", S + f"/element/{find(css)}/text")

    def click(css):
        call("POST", S + f"/element/{find(css)}/click", {})

    def source():
        return call("GET", S + "/source")

    def shot(name):
        png = base64.b64decode(call("GET", S + "/screenshot"))
        with open(os.path.join(SHOTS, name), "wb") as f:
            f.write(png)

    go(BASE + "/ui")
    check(lambda: "Log in" in call("GET", S + "/title"), "an unauthenticated visit lands on the login page")
    call("POST", S + f"/element/{find('input[name=token]')}/value", {"text": "kw_wrong"})
    click("#login")
    check(lambda: "Unknown token" in source(), "a wrong token is refused")
    go(BASE + "/ui/login")
    call("POST", S + f"/element/{find('input[name=token]')}/value", {"text": TOKEN})
    click("#login")
    check(lambda: "Dashboard" in call("GET", S + "/title"), "log in with an operator token")
    check(lambda: int(text("#produced")) >= 1, "the dashboard counts produced devices")
    check(lambda: "provision" in text("#sessions") and "completed" in text("#sessions"),
          "the dashboard lists recent RAMoverHTTP sessions")
    active_before = int(text("#active"))
    shot("ui-dashboard.png")
    go(BASE + "/ui/devices")
    call("POST", S + f"/element/{find('#q')}/value", {"text": DEVICE})
    click("#search")
    check(lambda: "?q=" in call("GET", S + "/url"), "search for the device")
    click(f'a[href="/ui/devices/{DEVICE}"]')
    check(lambda: DEVICE in call("GET", S + "/title"), "find the device and open it")
    click("a.cert")
    check(lambda: call("GET", S + "/title").startswith("Certificate"), "open its certificate")
    serial = call("GET", S + "/title").split()[1]
    check(lambda: text("#state") == "active", f"certificate {serial} is active")
    check(lambda: "Key attestation" in source(), "the certificate page shows the key attestation")
    click("#revoke")
    check(lambda: text("#state") == "revoked", "revoke it (reason keyCompromise)")
    go(BASE + "/ui")
    check(lambda: int(text("#active")) == active_before - 1, "the dashboard shows one active certificate less")
    go(BASE + "/ui/crl")
    check(lambda: text("#crl-count") == "1" and serial in source(), "the CRL page now lists the certificate")
    shot("ui-crl.png")
    go(BASE + "/ui/audit")
    check(lambda: "Hash chain intact" in source() and "certificate.revoked" in source(), "the audit log shows the revocation, chain intact")
    call("DELETE", S)
finally:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(driver.pid, sig)
        except ProcessLookupError:
            break
        time.sleep(0.5)
    driver.wait(timeout=10)
