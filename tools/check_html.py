"""Check the built HTML book in headless Chromium, the way a reader would see it.

Usage::

    python tools/check_html.py _build/test/_build/html [--screenshots _build/screenshots]

For every page listed in ``_toc.yml`` the page is served from a local HTTP server
on 127.0.0.1, loaded in Debian's Chromium (headless) and, once MathJax has
finished (``MathJax.startup.promise``), checked:

* the page loaded (HTTP 200, the ``load`` event fired);
* math is typeset: on a page with math, every math element holds an
  ``mjx-container``, there is no ``mjx-merror`` and no MathJax error text;
* every ``<img>`` of the content has loaded (``complete && naturalWidth > 0``),
  and a chapter page has at least one figure; no widget output fell back to its
  text repr (``VBox(children=...)``: the widget's bundle had no ``image/png``);
* no script, stylesheet, font or image is taken from another host (CDN);
* the browser reported no error: no uncaught exception, no ``console.error``,
  no failed or 4xx/5xx resource load, no error-level log entry -- and no request
  left 127.0.0.1 (the book must work offline, without any CDN).

* every cell that calls an explorer (``..._explorer()``) shows its static control, and
  every static explorer (``diffnotes.widgets``, a ``div.dn-explorer``) moves: each
  control goes to both ends, the middle and back to its default; each time the ``<img>``
  must be the frame of that grid point and loaded, the control must show that point's value
  (also as ``aria-valuetext``), each control must change the frame at least once, and one
  right-arrow key press on a focused slider must step it to the next frame;
* no code block or output scrolls sideways at the 1280-px window (printed output wraps;
  code lines must fit the text column, whose width in characters is printed);
* budgets (printed at the end, with what was measured): frames of one explorer <=
  ``EXPLORER_BUDGET_MB``, of all explorers <= ``FRAMES_BUDGET_MB``, one page's transfer with
  a cold cache <= ``PAGE_BUDGET_MB``, the whole built site on disk <= ``SITE_BUDGET_MB``.

A screenshot of each page is saved as ``<screenshots>/<page>.png``. One PASS/FAIL
line is printed per page; the exit status is non-zero when any page fails.

The browser is driven through the Chrome DevTools Protocol over a websocket
(``websocket-client``), so no chromedriver and no Selenium Manager (which would
try to download a browser) is needed. When Chromium is missing it is installed
with ``apt-get`` (as root; otherwise the script stops with a message).
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import itertools
import json
import os
import re
import shutil
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-port=0",
]
WIDTH, HEIGHT = 1280, 2000
MAX_SCREENSHOT_HEIGHT = 12000
PAGE_TIMEOUT = 90.0
# Budgets (issue 16): the frames of one static explorer, all explorers' frames in the site, one
# page's transfer (HTML + everything it loads), and the whole built site on disk.
EXPLORER_BUDGET_MB = 1.5
FRAMES_BUDGET_MB = 20.0
PAGE_BUDGET_MB = 12.0
SITE_BUDGET_MB = 63.0          # 43 MB before the static explorers + 20 MB for their frames

# --------------------------------------------------------------------------- chromium


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    for path in ("/usr/bin/chromium", "/usr/lib/chromium/chromium"):
        if os.access(path, os.X_OK):
            return path
    return None


def ensure_chromium() -> str:
    path = find_chromium()
    if path:
        return path
    if os.geteuid() != 0:
        sys.exit(
            "check_html: Chromium is not installed and this is not root, so it cannot be "
            "installed here. Install it with:  sudo apt-get install -y chromium"
        )
    print("check_html: Chromium is missing; installing it with apt-get ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "chromium"], check=True, env=env)
    path = find_chromium()
    if not path:
        sys.exit("check_html: apt-get installed chromium but no chromium binary was found")
    return path


# --------------------------------------------------------------------------- http server


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".js": "application/javascript",
        ".mjs": "application/javascript",
        ".woff": "font/woff",
        ".woff2": "font/woff2",
        ".svg": "image/svg+xml",
    }

    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(directory: Path) -> tuple[Server, int]:
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


# --------------------------------------------------------------------------- CDP client


class CDPError(RuntimeError):
    pass


class CDP:
    """A minimal synchronous Chrome DevTools Protocol client (flat sessions)."""

    def __init__(self, ws_url: str):
        import websocket  # websocket-client

        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.ids = itertools.count(1)
        self.events: list[dict] = []

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass

    def _recv(self, timeout: float) -> dict | None:
        import websocket

        self.ws.settimeout(max(timeout, 0.01))
        try:
            return json.loads(self.ws.recv())
        except websocket.WebSocketTimeoutException:
            return None

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 60.0) -> dict:
        msg_id = next(self.ids)
        msg: dict = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError(f"{method}: no answer within {timeout:g} s")
            reply = self._recv(left)
            if reply is None:
                continue
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise CDPError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def pump(self, seconds: float):
        """Collect events for a while."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            msg = self._recv(left)
            if msg is not None and "method" in msg:
                self.events.append(msg)

    def wait_event(self, method: str, session: str, timeout: float, since: int = 0) -> dict | None:
        """Wait for an event (looking first at those collected from index ``since`` on)."""
        for ev in self.events[since:]:
            if ev["method"] == method and ev.get("sessionId") == session:
                return ev
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = self._recv(left)
            if msg is None or "method" not in msg:
                continue
            self.events.append(msg)
            if msg["method"] == method and msg.get("sessionId") == session:
                return msg
        return None


class Browser:
    def __init__(self, binary: str):
        self.profile = tempfile.mkdtemp(prefix="check_html-chromium-")
        self.log = open(os.path.join(self.profile, "chromium.log"), "wb")  # noqa: SIM115
        cmd = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}",
               f"--window-size={WIDTH},{HEIGHT}", "about:blank"]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or len(port_file.read_text().splitlines()) < 2:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.log.flush()
                tail = Path(self.log.name).read_text(errors="replace")[-3000:]
                self.quit()
                raise RuntimeError(f"Chromium did not start:\n{tail}")
            time.sleep(0.1)
        port, path = port_file.read_text().splitlines()[:2]
        self.cdp = CDP(f"ws://127.0.0.1:{port}{path}")

    def quit(self):
        if getattr(self, "cdp", None):
            try:
                self.cdp.send("Browser.close", timeout=5)
            except Exception:
                pass
            self.cdp.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


# --------------------------------------------------------------------------- page checks

# Runs in the page once it has loaded; resolves to a JSON-able report.
PAGE_PROBE = r"""
(async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const report = {errors: []};
  const mathScript = document.querySelector('script[src*="mathjax"]');
  report.mathjaxScript = mathScript ? mathScript.getAttribute('src') : null;
  if (mathScript) {
    const t0 = Date.now();
    while (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) {
      if (Date.now() - t0 > 30000) { report.errors.push('MathJax did not start'); break; }
      await sleep(100);
    }
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
      try { await MathJax.startup.promise; }
      catch (e) { report.errors.push('MathJax.startup.promise rejected: ' + e); }
    }
  }
  const content = document.querySelector('main') || document.querySelector('article')
                  || document.body;
  // images: make lazy ones load, then wait for all of them
  const imgs = Array.from(content.querySelectorAll('img'));
  imgs.forEach((img) => { if (img.loading === 'lazy') img.loading = 'eager'; });
  await Promise.all(imgs.map((img) => img.complete ? null : new Promise((r) => {
    img.addEventListener('load', r); img.addEventListener('error', r); setTimeout(r, 20000);
  })));
  report.images = imgs.length;
  report.brokenImages = imgs.filter((img) => !(img.complete && img.naturalWidth > 0))
                            .map((img) => img.getAttribute('src'));
  report.figures = content.querySelectorAll('figure, div.cell_output img, img').length;
  // math
  const mathEls = Array.from(content.querySelectorAll('.math'));
  report.mathElements = mathEls.length;
  report.mjxContainers = document.querySelectorAll('mjx-container').length;
  report.untypeset = mathEls.filter((el) => !el.querySelector('mjx-container'))
                            .map((el) => el.textContent.trim().slice(0, 80));
  report.merrors = Array.from(document.querySelectorAll('mjx-merror, [data-mjx-error]'))
                        .map((el) => (el.getAttribute('data-mjx-error') || el.textContent)
                        .slice(0, 120));
  const text = document.body.innerText;
  report.mathErrorText = /Math input error|Undefined control sequence|Missing (open|close) brace/
                         .test(text);
  // assets that would come from another host (a CDN): scripts, styles, preloads, fonts
  const isRemote = (u) => {
    try {
      const x = new URL(u, location.href);
      return /^https?:$/.test(x.protocol) && x.host !== location.host;
    } catch (e) { return false; }
  };
  report.remoteAssets = [
    ...Array.from(document.querySelectorAll('script[src]')).map((e) => e.src),
    ...Array.from(document.querySelectorAll('link[href]'))
         .filter((e) => /stylesheet|preload|modulepreload|icon|manifest/.test(e.rel))
         .map((e) => e.href),
    ...Array.from(document.querySelectorAll(
           'img[src], iframe[src], video[src], audio[src], source[src]')).map((e) => e.src),
  ].filter(isRemote);
  // a widget whose output had no image/png shows up as its text repr, e.g. "VBox(children=..."
  report.widgetText = Array.from(content.querySelectorAll('.cell_output .text_plain'))
    .map((e) => e.textContent.trim())
    .filter((t) => /^[A-Z]\w*\((children|value|layout|description|options|outputs)=/.test(t))
    .map((t) => t.split('\n')[0].slice(0, 80));
  report.title = document.title;
  report.height = Math.max(document.documentElement.scrollHeight, document.body.scrollHeight);
  return report;
})()
"""


# Drives every static explorer (diffnotes.widgets): each control to both ends and the middle
# (then back to its default); after each move the shown <img> must be the frame of the new grid
# point, loaded, with the control showing that point's value. Resolves to a JSON-able report.
EXPLORER_PROBE = r"""
(async () => {
  const out = [];
  // a cell that calls an explorer must show its static control (not a PNG or a text repr)
  const missing = Array.from(document.querySelectorAll('div.cell'))
    .filter((cell) => /\b\w+_explorer\(/.test(
      (cell.querySelector('.cell_input') || {textContent: ''}).textContent))
    .filter((cell) => !cell.querySelector('.cell_output .dn-explorer'))
    .map((cell) => cell.querySelector('.cell_input').textContent.trim().split('\n')[0]);
  const roots = Array.from(document.querySelectorAll('.dn-explorer'));
  for (const [e, root] of roots.entries()) {
    const r = {title: root.getAttribute('aria-label') || ('explorer ' + e), problems: [],
               controls: 0, moves: 0, frameBytes: 0};
    out.push(r);
    const dataEl = root.querySelector('script.dn-explorer-data');
    const img = root.querySelector('img.dn-explorer-frame');
    if (!img) { r.problems.push('no frame <img>'); continue; }
    r.frameBytes += img.getAttribute('src').length;
    if (!dataEl) { continue; }                       // a single default frame: nothing to move
    const d = JSON.parse(dataEl.textContent);
    d.frames.forEach((f) => { if (f) r.frameBytes += f.length; });
    const ctl = Array.from(root.querySelectorAll('[data-dn-axis]'));
    r.controls = ctl.length;
    if (ctl.length !== d.shape.length) r.problems.push(`${ctl.length} controls for a ` +
                                                        `${d.shape.length}-D grid`);
    const frameOf = (k) => { const f = d.frames[d.index[k]]; return f === null ? null : f; };
    const defaultSrc = img.src;
    const pos = () => ctl.map((c) => +c.value);
    const flat = (p) => p.reduce((k, i, a) => k * d.shape[a] + i, 0);
    const expectSrc = (k) => { const f = frameOf(k);
      return f === null ? defaultSrc : 'data:image/png;base64,' + f; };
    for (const [a, c] of ctl.entries()) {
      const n = d.shape[a], start = +c.value;
      let changed = false;
      const targets = [0, Math.floor((n - 1) / 2), n - 1, start];
      for (const i of targets) {
        const before = img.src;
        c.value = String(i);
        c.dispatchEvent(new Event('input', {bubbles: true}));
        try { await img.decode(); } catch (err) { /* reported below */ }
        r.moves += 1;
        const k = flat(pos());
        const where = `${d.names[a]} -> ${d.labels[a][i]}`;
        if (+c.value !== i) r.problems.push(`${where}: the control did not move`);
        if (img.src !== expectSrc(k)) r.problems.push(`${where}: not the frame of that point`);
        if (!(img.complete && img.naturalWidth > 0)) r.problems.push(`${where}: frame not loaded`);
        if (img.src !== before) changed = true;
        const shown = c.tagName === 'SELECT' ? c.options[c.selectedIndex].textContent
          : (root.querySelector(`output[data-dn-axis-out="${a}"]`) || {}).textContent;
        if (shown !== d.labels[a][i]) r.problems.push(`${where}: shows ${JSON.stringify(shown)}`);
        if (c.type === 'range' && c.getAttribute('aria-valuetext') !== d.labels[a][i])
          r.problems.push(`${where}: aria-valuetext ${c.getAttribute('aria-valuetext')}`);
      }
      if (!changed) r.problems.push(`moving ${d.names[a]} never changed the frame`);
      if (c.disabled || c.tabIndex < 0) r.problems.push(`${d.names[a]} is not focusable`);
    }
  }
  return {explorers: out, missing: missing};
})()
"""

# Focuses the first slider of explorer #i at position 0 (the keyboard check then presses ->).
KEYBOARD_FOCUS = r"""
((i) => {
  const root = document.querySelectorAll('.dn-explorer')[i];
  const c = root && root.querySelector('input[type=range][data-dn-axis]');
  if (!c) return null;
  c.value = '0'; c.dispatchEvent(new Event('input', {bubbles: true}));
  c.scrollIntoView(); c.focus();
  return document.activeElement === c ? root.querySelector('img').getAttribute('data-dn-index')
                                      : 'not focused';
})(%d)
"""
KEYBOARD_READ = r"""
((i) => {
  const root = document.querySelectorAll('.dn-explorer')[i];
  const c = root.querySelector('input[type=range][data-dn-axis]');
  const a = c.getAttribute('data-dn-axis');
  const d = JSON.parse(root.querySelector('script.dn-explorer-data').textContent);
  return {value: +c.value, index: root.querySelector('img').getAttribute('data-dn-index'),
          shown: root.querySelector(`output[data-dn-axis-out="${a}"]`).textContent,
          label: d.labels[+a][+c.value]};
})(%d)
"""

# Code blocks and outputs that scroll sideways at the window width, and the width of the text
# column in characters of code.
LAYOUT_PROBE = r"""
(() => {
  const content = document.querySelector('main') || document.body;
  // collapsed dropdowns (solutions) are laid out only when open
  const closed = Array.from(content.querySelectorAll('details')).filter((d) => !d.open);
  closed.forEach((d) => { d.open = true; });
  const wide = [];
  const blocks = content.querySelectorAll(
    'div.cell_input pre, div.cell_output pre, div.cell_output .output, div.highlight pre');
  for (const el of blocks) {
    if (el.scrollWidth > el.clientWidth + 1) {
      const kind = el.closest('.cell_output') ? 'output' : 'code';
      const lines = el.textContent.split('\n');
      const longest = lines.reduce((m, l) => l.length > m.length ? l : m, '');
      wide.push(`${kind} by ${el.scrollWidth - el.clientWidth} px: ` +
                JSON.stringify(longest.trim().slice(0, 70)));
    }
  }
  const chars = (pre) => {
    if (!pre || pre.clientWidth === 0) return null;
    const probe = document.createElement('span');
    probe.textContent = 'x'.repeat(100);
    pre.appendChild(probe);
    const charW = probe.getBoundingClientRect().width / 100;
    probe.remove();
    const cs = getComputedStyle(pre);
    const inner = pre.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
    return Math.floor(inner / charW + 1e-6);
  };
  const cells = Array.from(content.querySelectorAll('div.cell_input pre'));
  const nested = (el) => el.closest('.admonition, .solution, .exercise, details, aside');
  const result = {wide: Array.from(new Set(wide)),
    columnChars: chars(cells.find((el) => !nested(el)) || content.querySelector('pre')),
    nestedChars: chars(cells.find((el) => nested(el)))};
  closed.forEach((d) => { d.open = false; });                 // as the reader finds them
  return result;
})()
"""


def remote_url(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("data", "blob", "about", "chrome", "devtools", "file", ""):
        return False
    return parts.hostname not in ("127.0.0.1", "localhost")


def browser_own_request(url: str) -> bool:
    """The favicon Chromium asks for by itself (the page declares none): not a page asset."""
    return urllib.parse.urlsplit(url).path == "/favicon.ico"


def evaluate(cdp: CDP, session: str, expression: str):
    res = cdp.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                        "returnByValue": True},
                   session=session, timeout=PAGE_TIMEOUT)
    if "exceptionDetails" in res:
        raise CDPError(f"probe failed: {res['exceptionDetails'].get('text')} "
                       f"{(res['exceptionDetails'].get('exception') or {}).get('description')}")
    return res["result"].get("value")


def press_key(cdp: CDP, session: str, key: str, code: int):
    for kind in ("keyDown", "keyUp"):
        cdp.send("Input.dispatchKeyEvent", {"type": kind, "key": key, "code": key,
                                            "windowsVirtualKeyCode": code,
                                            "nativeVirtualKeyCode": code}, session=session)


def check_explorers(cdp: CDP, session: str, stats: dict) -> list[str]:
    """Drive every static explorer of the page (EXPLORER_PROBE), then its first slider by the
    keyboard (focus, one press of the right arrow key)."""
    problems = []
    found = evaluate(cdp, session, EXPLORER_PROBE) or {}
    problems += [f"explorer cell without its static control: {m!r}"
                 for m in found.get("missing", [])]
    for i, e in enumerate(found.get("explorers", [])):
        mb = e["frameBytes"] / 1e6
        stats["explorers"].append((e["title"], mb, e["controls"], e["moves"]))
        problems += [f"explorer {e['title']!r}: {p}" for p in e["problems"][:5]]
        if mb > EXPLORER_BUDGET_MB:
            problems.append(f"explorer {e['title']!r}: {mb:.2f} MB of frames, over the "
                            f"{EXPLORER_BUDGET_MB:g} MB budget")
        start = evaluate(cdp, session, KEYBOARD_FOCUS % i)
        if start is None:
            continue
        if start == "not focused":
            problems.append(f"explorer {e['title']!r}: its slider cannot take the focus")
            continue
        press_key(cdp, session, "ArrowRight", 39)
        cdp.pump(0.1)
        after = evaluate(cdp, session, KEYBOARD_READ % i)
        if after["value"] != 1 or after["index"] == start or after["shown"] != after["label"]:
            problems.append(f"explorer {e['title']!r}: the right arrow key did not move its "
                            f"slider to the next frame ({after})")
    return problems


def check_page(browser: Browser, url: str, shot: Path | None,
               needs_figure: bool, stats: dict | None = None) -> list[str]:
    """Problems of one page; ``stats`` receives its weight, explorers and text column width."""
    cdp = browser.cdp
    problems: list[str] = []
    stats = {} if stats is None else stats
    stats.update(explorers=[], weight_mb=0.0, column_chars=None)
    target = cdp.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
        "sessionId"]
    first_event = len(cdp.events)
    try:
        for domain in ("Page", "Runtime", "Log", "Network"):
            cdp.send(f"{domain}.enable", session=session)
        # every page is weighed cold (MathJax and the theme counted on each page)
        cdp.send("Network.setCacheDisabled", {"cacheDisabled": True}, session=session)
        cdp.send("Emulation.setDeviceMetricsOverride",
                 {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
                 session=session)
        since = len(cdp.events)
        nav = cdp.send("Page.navigate", {"url": url}, session=session)
        if nav.get("errorText"):
            return [f"navigation failed: {nav['errorText']}"]
        if cdp.wait_event("Page.loadEventFired", session, PAGE_TIMEOUT, since) is None:
            problems.append(f"the load event did not fire within {PAGE_TIMEOUT:g} s")
        res = cdp.send("Runtime.evaluate",
                       {"expression": PAGE_PROBE, "awaitPromise": True, "returnByValue": True},
                       session=session, timeout=PAGE_TIMEOUT)
        if "exceptionDetails" in res:
            problems.append(f"page probe failed: {res['exceptionDetails'].get('text')}")
            report = {}
        else:
            report = res["result"].get("value") or {}
        # --- static explorers, and code or output that scrolls sideways
        if report:
            try:
                problems += check_explorers(cdp, session, stats)
                layout = evaluate(cdp, session, LAYOUT_PROBE) or {}
            except CDPError as exc:
                problems.append(f"explorer/layout probe: {exc}")
                layout = {}
            stats["column_chars"] = layout.get("columnChars")
            stats["nested_chars"] = layout.get("nestedChars")
            for w in layout.get("wide", [])[:8]:
                problems.append(f"scrolls sideways at {WIDTH} px: {w}")
            if len(layout.get("wide", [])) > 8:
                problems.append(f"... and {len(layout['wide']) - 8} more blocks that scroll")
        cdp.pump(0.5)  # late console messages / resource errors

        # --- the page's own findings
        problems += report.get("errors", [])
        if report.get("mathElements", 0) and not report.get("mathjaxScript"):
            problems.append("the page has math but loads no MathJax")
        if report.get("mathjaxScript") and "mathjax/tex-chtml.js" not in report["mathjaxScript"]:
            problems.append(f"MathJax is not the local copy: {report['mathjaxScript']}")
        if report.get("mathElements", 0) and not report.get("mjxContainers", 0):
            problems.append("math was not typeset (no mjx-container)")
        if report.get("untypeset"):
            problems.append(f"{len(report['untypeset'])} math element(s) not typeset, "
                            f"e.g. {report['untypeset'][0]!r}")
        if report.get("merrors"):
            problems.append(f"{len(report['merrors'])} MathJax error(s): {report['merrors'][:3]}")
        if report.get("mathErrorText"):
            problems.append("MathJax error text on the page")
        if report.get("remoteAssets"):
            problems.append(f"asset(s) from another host (CDN): {report['remoteAssets'][:5]}")
        if report.get("widgetText"):
            problems.append("widget output rendered as text (its mime bundle needs an image/png): "
                            f"{report['widgetText'][:3]}")
        if report.get("brokenImages"):
            problems.append(f"image(s) did not load: {report['brokenImages'][:5]}")
        if needs_figure and not report.get("images", 0):
            problems.append("a chapter page without any figure")

        # --- what the browser reported
        main_status = None
        request_urls: dict[str, str] = {}
        for ev in cdp.events[first_event:]:
            if ev.get("sessionId") != session:
                continue
            method, p = ev["method"], ev.get("params", {})
            if method == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                desc = (d.get("exception") or {}).get("description") or d.get("text")
                problems.append(f"uncaught exception: {str(desc).splitlines()[0][:200]}"
                                f" ({d.get('url', '')}:{d.get('lineNumber', '?')})")
            elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                args = " ".join(str(a.get("value", a.get("description", "")))
                                for a in p.get("args", []))
                problems.append(f"console.{p['type']}: {args[:200]}")
            elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                e = p["entry"]
                if browser_own_request(e.get("url", "")):
                    continue
                problems.append(f"browser log error ({e.get('source')}): "
                                f"{e.get('text', '')[:200]} {e.get('url', '')}")
            elif method == "Network.requestWillBeSent":
                req_url = p.get("request", {}).get("url", "")
                request_urls[p.get("requestId", "")] = req_url
                if remote_url(req_url):
                    problems.append(f"request to a remote host: {req_url[:200]}")
            elif method == "Network.responseReceived":
                r = p.get("response", {})
                if r.get("url") == url:
                    main_status = r.get("status")
                if r.get("status", 200) >= 400 and not browser_own_request(r.get("url", "")):
                    problems.append(f"HTTP {r.get('status')} for {r.get('url')}")
            elif method == "Network.loadingFinished":
                stats["weight_mb"] += p.get("encodedDataLength", 0) / 1e6
            elif method == "Network.loadingFailed" and not p.get("canceled"):
                failed = request_urls.get(p.get("requestId", ""), "?")
                problems.append(f"resource failed to load: {p.get('errorText')} "
                                f"({p.get('type')}) {failed[:200]}")
        if main_status is not None and main_status != 200:
            problems.append(f"the page itself answered HTTP {main_status}")
        if stats["weight_mb"] > PAGE_BUDGET_MB:
            problems.append(f"page weight {stats['weight_mb']:.1f} MB, over the "
                            f"{PAGE_BUDGET_MB:g} MB budget")

        # --- screenshot (whole page, up to MAX_SCREENSHOT_HEIGHT px)
        if shot is not None:
            height = int(min(max(report.get("height", HEIGHT), HEIGHT), MAX_SCREENSHOT_HEIGHT))
            cdp.send("Emulation.setDeviceMetricsOverride",
                     {"width": WIDTH, "height": height, "deviceScaleFactor": 1,
                      "mobile": False}, session=session)
            cdp.pump(0.3)
            data = cdp.send("Page.captureScreenshot", {"format": "png"}, session=session)
            shot.parent.mkdir(parents=True, exist_ok=True)
            shot.write_bytes(base64.b64decode(data["data"]))
    finally:
        try:
            cdp.send("Target.closeTarget", {"targetId": target}, timeout=10)
        except CDPError:
            pass
    # de-duplicate, keep order
    return list(dict.fromkeys(problems))


# --------------------------------------------------------------------------- pages


def toc_pages(toc_file: Path) -> list[tuple[str, bool]]:
    """(docname, is_chapter) for every page of the book's _toc.yml."""
    import yaml

    toc = yaml.safe_load(toc_file.read_text(encoding="utf8"))
    pages: list[tuple[str, bool]] = [(toc["root"], False)]

    def walk(entries, chapter):
        for entry in entries or []:
            if "file" in entry:
                pages.append((re.sub(r"\.(md|ipynb|rst)$", "", entry["file"]), chapter))
            walk(entry.get("sections"), chapter)

    for part in toc.get("parts", []):
        chapter = "chapter" in str(part.get("caption", "")).lower()
        walk(part.get("chapters"), chapter)
    walk(toc.get("chapters"), True)
    return pages


def print_budgets(all_stats: dict[str, dict], html: Path, site: bool) -> int:
    """Print every budget with what was measured; the number of budgets exceeded (the site
    totals only when the whole book was checked)."""
    explorers = [(page, *e) for page, st in all_stats.items() for e in st.get("explorers", [])]
    frames_mb = sum(e[2] for e in explorers)
    print(f"budgets: {len(explorers)} static explorer(s) driven on {len(all_stats)} page(s)")
    for page, title, mb, controls, moves in explorers:
        print(f"  {mb:6.2f} MB  {page}: {title[:70]} ({controls} control(s), {moves} moves)")
    over = 0
    largest = max((e[2] for e in explorers), default=0.0)
    print(f"  frames per explorer <= {EXPLORER_BUDGET_MB:g} MB: largest {largest:.2f} MB")
    print(f"  frames of all explorers <= {FRAMES_BUDGET_MB:g} MB: {frames_mb:.2f} MB")
    over += frames_mb > FRAMES_BUDGET_MB and site
    weights = [(st.get("weight_mb", 0.0), page) for page, st in all_stats.items()]
    if weights:
        top = max(weights)
        print(f"  page weight <= {PAGE_BUDGET_MB:g} MB: heaviest {top[0]:.1f} MB ({top[1]})")
    if site:
        size = sum(f.stat().st_size for f in html.rglob("*") if f.is_file()) / 1e6
        print(f"  built site <= {SITE_BUDGET_MB:g} MB: {size:.1f} MB")
        over += size > SITE_BUDGET_MB
    cols = sorted({st["column_chars"] for st in all_stats.values() if st.get("column_chars")})
    nested = sorted({st["nested_chars"] for st in all_stats.values() if st.get("nested_chars")})
    if cols:
        print(f"  text column at {WIDTH} px: {cols[0]} characters of code per line"
              + (f" ({nested[0]} inside an exercise or solution)" if nested else ""))
    if over:
        print(f"check_html: {over} site budget(s) exceeded")
    return int(over)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path, help="the built HTML folder (…/_build/html)")
    parser.add_argument("--toc", type=Path, default=REPO / "_toc.yml",
                        help="the book's _toc.yml (default: %(default)s)")
    parser.add_argument("--screenshots", type=Path, default=REPO / "_build" / "screenshots",
                        help="folder for the page screenshots (default: %(default)s)")
    parser.add_argument("--page", action="append", default=None,
                        help="check only this page (docname, e.g. book/intro; repeatable)")
    parser.add_argument("--require-figure", action="store_true",
                        help="with --page: the pages must have at least one figure")
    args = parser.parse_args(argv)

    html = args.html.resolve()
    if not (html / "index.html").is_file() and not args.page:
        print(f"check_html: {html} holds no index.html -- build the book first",
              file=sys.stderr)
        return 2
    if args.page:
        pages = [(re.sub(r"\.html$", "", p), args.require_figure) for p in args.page]
    else:
        pages = toc_pages(args.toc)

    binary = ensure_chromium()
    server, port = serve(html)
    failures = 0
    all_stats: dict[str, dict] = {}
    browser = Browser(binary)
    try:
        for docname, is_chapter in pages:
            if not (html / f"{docname}.html").is_file():
                print(f"FAIL {docname}: {docname}.html was not built")
                failures += 1
                continue
            url = f"http://127.0.0.1:{port}/{urllib.parse.quote(docname)}.html"
            shot = args.screenshots / f"{Path(docname).name}.png"
            t0 = time.monotonic()
            stats: dict = {}
            try:
                problems = check_page(browser, url, shot, is_chapter, stats)
            except (CDPError, OSError) as exc:
                problems = [f"browser error: {exc}"]
            dt = time.monotonic() - t0
            all_stats[docname] = stats
            n_exp = len(stats.get("explorers", []))
            info = (f"{stats.get('weight_mb', 0):.1f} MB"
                    + (f", {n_exp} explorer(s) driven" if n_exp else ""))
            if problems:
                failures += 1
                print(f"FAIL {docname} ({dt:.1f} s, {info}):")
                for p in problems:
                    print(f"     - {p}")
            else:
                print(f"PASS {docname} ({dt:.1f} s, {info}) screenshot: {shot}")
            sys.stdout.flush()
    finally:
        browser.quit()
        server.shutdown()
    failures += print_budgets(all_stats, html, site=not args.page)
    if failures:
        print(f"check_html: FAIL -- {failures} of {len(pages)} pages have problems")
    else:
        print(f"check_html: PASS -- all {len(pages)} pages")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
