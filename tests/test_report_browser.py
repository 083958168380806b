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


def frame_state(browser, i):
    """The i-th sample frame: divider positions, which picture shows at the middle of each band (as
    the browser hit-tests it, clip-paths included), and the frame's box in the viewport."""
    return browser.js(f"""(() => {{
        const frame = document.querySelectorAll('.quad')[{i}];
        frame.scrollIntoView({{block: 'center'}});
        const r = frame.getBoundingClientRect(), n = +frame.dataset.n;
        const ranges = [...frame.nextElementSibling.querySelectorAll('input')].map(x => +x.value);
        const edges = [0, ...ranges, 100];
        const shown = edges.slice(1).map((e, k) => {{
            const el = document.elementFromPoint(r.left + r.width * (edges[k] + e) / 200, r.top + r.height / 2);
            return el && el.alt ? el.alt.split(':')[0] : (el && el.className);
        }});
        const bars = [...frame.querySelectorAll('.bar')].map(b => parseFloat(getComputedStyle(b).left));
        return {{n, ranges, shown, bars, x: r.left, y: r.top, w: r.width, h: r.height}};
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
    beaten = json.loads(json.dumps(EVAL))   # lanczos beats the model: the headline must say so
    beaten["methods"].append("lanczos")
    beaten["mean"]["lanczos"] = {**beaten["mean"]["bicubic"], "psnr_y": 36.5}
    (run / "eval.json").write_text(json.dumps(beaten), encoding="utf-8")
    report = write_report(run, make_samples())
    for domain in ("Page", "Runtime", "Log"):      # Runtime and Log report console calls and errors
        browser.page(f"{domain}.enable")
    browser.page("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
    browser.page("Page.navigate", url=report.as_uri())
    browser.wait_for("Page.loadEventFired")
    assert not problems(browser.events), json.dumps(problems(browser.events), indent=1)[:3000]
    assert browser.js("document.querySelectorAll('input[type=range]').length") == 3 + 2 + 3
    assert browser.js("[...document.images].every(im => im.complete && im.naturalWidth > 0)"), "an image failed to decode"

    # 1. the headline names the baseline that beats the model
    assert browser.js("document.querySelector('.verdict').textContent").startswith("the lanczos baseline beats the model by")

    # 2. four-way: damaged | best baseline | restored | clean, each in its own quarter
    first = frame_state(browser, 0)
    assert first["n"] == 4 and first["ranges"] == [25, 50, 75], first
    assert first["shown"] == ["damaged", "lanczos", "restored", "clean"], first
    assert all(abs(b - first["w"] * p / 100) <= 1 for b, p in zip(first["bars"], first["ranges"])), first
    # drag the third divider from 3/4 to 3/5 with the mouse: clean now shows from there on
    browser.click(first["x"] + first["w"] * 0.75, first["y"] + first["h"] / 2, to_x=first["x"] + first["w"] * 0.6)
    moved = frame_state(browser, 0)
    assert moved["ranges"][:2] == [25, 50] and 58 <= moved["ranges"][2] <= 62, moved
    assert moved["shown"] == ["damaged", "lanczos", "restored", "clean"], moved
    assert browser.js("""(() => { const r = document.querySelector('.quad').getBoundingClientRect();
        return document.elementFromPoint(r.left + r.width * 0.7, r.top + r.height / 2).alt; })()""") == "clean: a.png"
    # a divider cannot pass its neighbour: dragging the first one far right stops at the second
    browser.click(moved["x"] + moved["w"] * 0.24, moved["y"] + moved["h"] / 2, to_x=moved["x"] + moved["w"] * 0.95)
    assert frame_state(browser, 0)["ranges"][:2] == [50, 50]
    # the keyboard moves a divider too (the range inputs are focusable): End takes it as far as it may go
    browser.js("document.querySelectorAll('.dividers')[1].querySelector('input').focus()")
    for kind in ("rawKeyDown", "keyUp"):
        browser.page("Input.dispatchKeyEvent", type=kind, key="End", code="End", windowsVirtualKeyCode=35)
    keyed = frame_state(browser, 1)
    assert keyed["n"] == 3 and keyed["ranges"] == [66.67, 66.67], keyed
    assert keyed["shown"][0] == "damaged" and keyed["shown"][-1] == "clean", keyed

    # 3. the zoom crops are 1:1: each image pixel one CSS pixel, at the frame's own full resolution
    crops = browser.js("""[...document.querySelectorAll('img.zoom')].map(im => { const r = im.getBoundingClientRect();
        return [im.naturalWidth, im.naturalHeight, r.width, r.height]; })""")
    assert len(crops) == 4 + 3 + 4 and all(nw == w and nh == h for nw, nh, w, h in crops), crops
    assert [c[:2] for c in crops[-4:]] == [[96, 96]] * 4   # z.png: full-resolution crops of a downscaled frame

    # 4. the error-map toggle swaps every picture but the clean one, and back
    errors = """(() => { const s = document.querySelectorAll('.sample')[0];
        return [...s.querySelectorAll('img.view, img.zoom')].map(im => im.src === im.dataset.err); })()"""
    assert not any(browser.js(errors))
    browser.click(*center(browser, ".sample .show-errors"))
    # the frame's pictures bottom up (clean, restored, lanczos, damaged), then the crops left to right
    assert browser.js(errors) == [False, True, True, True, True, True, True, False]
    browser.click(*center(browser, ".sample .show-errors"))
    assert not any(browser.js(errors))
    # 5. the mask overlay of the masked sample: hidden until asked for
    visible = "document.querySelector('img.mask').getBoundingClientRect().width"
    assert browser.js(visible) == 0
    browser.click(*center(browser, ".show-mask"))
    assert browser.js(visible) > 100

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
