"""report.html in a real browser: the sliders follow mouse and keyboard, sorting works, no console errors.

Drives headless Chromium through the DevTools protocol over `--remote-debugging-pipe` (JSON messages
separated by NUL bytes on file descriptors 3 and 4), so it needs no websocket client and no extra
Python package; CI installs the browser with `apt-get install -y chromium`.
"""
import base64
import json
import os
import select
import shutil
import subprocess
import sys
import time

import pytest
from test_report import EVAL, ODD, RECIPE, make_samples, metrics_lines

from workbench.judge.report import write_report

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (/usr/bin/chromium; apt-get install -y chromium)")
# Root in a container without network, GPU or D-Bus: no sandbox, no GPU, nothing fetched in the background.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-extensions", "--disable-default-apps", "--no-first-run", "--no-default-browser-check",
         "--mute-audio", "--hide-scrollbars", "--remote-debugging-pipe"]
LAUNCH = """import os, sys
fds = [int(fd) for fd in sys.argv[1:3]]
copies = [os.dup(fd) for fd in fds]       # first copy both: either may sit on fd 3 or 4 already
os.dup2(copies[0], 3)
os.dup2(copies[1], 4)
os.set_inheritable(3, True)               # dup2 onto itself would keep the copy's close-on-exec flag
os.set_inheritable(4, True)
for fd in fds + copies:
    if fd > 4:
        os.close(fd)
os.execv(sys.argv[3], sys.argv[3:])
"""
TIMEOUT = 30   # seconds for any one browser reply: a hung browser fails the test instead of blocking CI


class Browser:
    """The few DevTools commands the test needs, on one page; events are kept in `events`."""

    def __init__(self, tmp_path):
        to_browser, self._out = os.pipe()
        self._in, from_browser = os.pipe()
        self.log = open(tmp_path / "chromium.log", "w+")
        # The browser expects its ends of the pipes on fds 3 (commands in) and 4 (replies out); a tiny
        # Python launcher puts them there (subprocess keeps fd numbers, and dash cannot redirect fds > 9).
        self.proc = subprocess.Popen([sys.executable, "-c", LAUNCH, str(to_browser), str(from_browser), CHROMIUM, *FLAGS,
                                      f"--user-data-dir={tmp_path / 'profile'}"],
                                     pass_fds=(to_browser, from_browser), stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)
        os.close(to_browser)
        os.close(from_browser)
        self._buf, self._id, self.events = b"", 0, []
        try:
            target = self.send("Target.createTarget", url="about:blank")["targetId"]
            self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        except BaseException:
            self.close()     # never leave a browser behind
            raise

    def send(self, method, session=None, **params):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params, **({"sessionId": session} if session else {})}
        os.write(self._out, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._next()
            if reply.get("id") == self._id:
                assert "error" not in reply, (method, reply["error"])
                return reply.get("result", {})

    def page(self, method, **params):
        return self.send(method, self.session, **params)

    def wait_for(self, method):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if any(e.get("method") == method for e in self.events):
                return
            self._next()
        raise TimeoutError(method)

    def js(self, expression):
        result = self.page("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def _next(self):
        while b"\0" not in self._buf:
            ready, _, _ = select.select([self._in], [], [], TIMEOUT)
            chunk = os.read(self._in, 1 << 20) if ready else b""
            if not chunk:
                self.log.seek(0)
                raise RuntimeError(f"Chromium did not answer (exit {self.proc.poll()}); its log:\n{self.log.read()[-3000:]}")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        msg = json.loads(raw)
        if "method" in msg:
            self.events.append(msg)
        return msg

    def click(self, x, y, to_x=None):
        """Press at (x, y), optionally drag to (to_x, y), release: real pointer input, as a user gives it."""
        kw = dict(y=y, button="left", clickCount=1)
        self.page("Input.dispatchMouseEvent", type="mousePressed", x=x, **kw)
        if to_x is not None:
            self.page("Input.dispatchMouseEvent", type="mouseMoved", x=(x + to_x) / 2, y=y, button="left", buttons=1)
            self.page("Input.dispatchMouseEvent", type="mouseMoved", x=to_x, y=y, button="left", buttons=1)
        self.page("Input.dispatchMouseEvent", type="mouseReleased", x=to_x if to_x is not None else x, **kw)

    def screenshot(self, path, width, mobile=False):
        self.page("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=mobile)
        height = self.js("document.documentElement.scrollHeight")
        self.page("Emulation.setDeviceMetricsOverride", width=width, height=min(height, 12000), deviceScaleFactor=1, mobile=mobile)
        path.write_bytes(base64.b64decode(self.page("Page.captureScreenshot", format="png")["data"]))
        self.page("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=mobile)

    def close(self):
        try:
            self.send("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        os.close(self._in)
        os.close(self._out)
        self.log.close()


@pytest.fixture
def browser(tmp_path):
    b = Browser(tmp_path)
    yield b
    b.close()


def slider_state(browser, i):
    """The divider's left edge and the top image's clip as the page computes them; the box in the viewport."""
    return browser.js(f"""(() => {{
        const ba = document.querySelectorAll('.ba')[{i}];
        ba.scrollIntoView({{block: 'center'}});
        const r = ba.getBoundingClientRect();
        return {{value: +ba.querySelector('input').value, bar: parseFloat(getComputedStyle(ba.querySelector('.bar')).left),
                 clip: getComputedStyle(ba.querySelector('.top')).clipPath, x: r.left, y: r.top, w: r.width, h: r.height}};
    }})()""")


def center(browser, selector):
    """Scroll `selector` into view and return its centre in viewport coordinates, where the mouse goes."""
    return browser.js(f"""(() => {{
        const el = document.querySelector({json.dumps(selector)});
        el.scrollIntoView({{block: 'center'}});
        const r = el.getBoundingClientRect();
        return [r.left + r.width / 2, r.top + r.height / 2];
    }})()""")


def problems(events):
    """Uncaught exceptions, console errors and warnings, failed loads: what a user's console would show in red."""
    return [e for e in events if e["method"] == "Runtime.exceptionThrown"
            or (e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "warning", "assert"))
            or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] in ("error", "warning"))]


def test_report_in_chromium(tmp_path, browser):
    run = tmp_path / "superres-20240101-000000"
    run.mkdir()
    (run / "recipe.toml").write_text(RECIPE, encoding="utf-8")
    (run / "metrics.jsonl").write_text(metrics_lines(), encoding="utf-8")
    (run / "eval.json").write_text(json.dumps(EVAL), encoding="utf-8")
    report = write_report(run, make_samples())
    for domain in ("Page", "Runtime", "Log"):      # Runtime and Log report console calls and errors
        browser.page(f"{domain}.enable")
    browser.page("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
    browser.page("Page.navigate", url=report.as_uri())
    browser.wait_for("Page.loadEventFired")
    assert not problems(browser.events), json.dumps(problems(browser.events), indent=1)[:3000]
    assert browser.js("document.querySelectorAll('input[type=range]').length") == 6
    assert browser.js("[...document.images].every(im => im.complete && im.naturalWidth > 0)"), "an image failed to decode"

    # 1. drag the first slider's divider from the middle to a fifth of the way, with the mouse
    first = slider_state(browser, 0)
    assert first["value"] == 50 and abs(first["bar"] - first["w"] / 2) <= 1
    browser.click(first["x"] + first["w"] / 2, first["y"] + first["h"] / 2, to_x=first["x"] + first["w"] * 0.2)
    moved = slider_state(browser, 0)
    assert moved["value"] < 30 and abs(moved["bar"] - moved["w"] * moved["value"] / 100) <= 1, moved
    assert moved["clip"] != first["clip"], "the top image's clip follows the divider"

    # 2. the keyboard moves it too (the range input is focusable): End puts it at the far right
    browser.js("document.querySelectorAll('.ba input')[1].focus()")
    for kind in ("rawKeyDown", "keyUp"):
        browser.page("Input.dispatchKeyEvent", type=kind, key="End", code="End", windowsVirtualKeyCode=35)
    keyed = slider_state(browser, 1)
    assert keyed["value"] == 100 and abs(keyed["bar"] - keyed["w"]) <= 1, keyed

    # 3. the sort buttons reorder the sections (+inf, an exact restoration, is the largest gain)
    order = "[...document.querySelectorAll('.samples > .sample')].map(s => s.dataset.name)"
    expected = {"up": [ODD, "a.png", "z.png"], "down": ["z.png", "a.png", ODD], "name": ["a.png", ODD, "z.png"]}
    for how, names in expected.items():
        browser.click(*center(browser, f"[data-sort={how}]"))
        assert browser.js(order) == names, how

    # 4. a phone's width: nothing wider than the screen (tables scroll inside their own box)
    browser.page("Emulation.setDeviceMetricsOverride", width=390, height=800, deviceScaleFactor=1, mobile=True)
    assert browser.js("document.documentElement.scrollWidth") <= 390
    browser.screenshot(tmp_path / "report-phone.png", 390, mobile=True)
    browser.page("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
    browser.js("window.scrollTo(0, 0)")
    browser.screenshot(tmp_path / "report.png", 1280)
    for name in ("report.png", "report-phone.png"):
        png = (tmp_path / name).read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000, name

    # 5. nothing went wrong on the way: no uncaught exception, no console error or warning, no failed load
    assert not problems(browser.events), json.dumps(problems(browser.events), indent=1)[:3000]
