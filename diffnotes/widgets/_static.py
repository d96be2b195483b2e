"""The machinery shared by every explorer: a live ipywidget and its static twin in one object.

An :class:`Explorer` is a row of controls (ipywidgets) above a figure that a *figure function*
redraws whenever a control moves. Its display bundle carries three views of it:

* ``application/vnd.jupyter.widget-view+json``: the live widget (JupyterLab, with a kernel),
  every control of the figure function;
* ``text/html``: a self-contained control for renderers without a kernel (the HTML book,
  nbconvert, an editor's notebook view). Sliders (or drop-down lists) over a precomputed grid of
  one or two key parameters swap between frames drawn by the *same* figure function at build
  time; the default frame is a plain ``<img>``, so it shows before (or without) any script. No
  CDN, no require.js, no widget manager: a few lines of inline script, frames as data URIs;
* ``image/png``: the figure at the default settings (for renderers that show neither).

The frames cost a few seconds per explorer when it is first displayed; set the environment
variable ``DIFFNOTES_STATIC_FRAMES=0`` in a live session that needs no static copy.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import os
import re
from collections.abc import Callable

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["FRAME_BUDGET_BYTES", "Explorer", "frame_png", "sweep"]

#: Frames of one explorer's static control may weigh at most this much (base64, in the page).
FRAME_BUDGET_BYTES = 1_500_000
#: Resolution and palette size of the static frames (palette PNG, Pillow ``quantize``).
FRAME_DPI = 100
FRAME_COLORS = 96


def _png(fig, dpi: int = FRAME_DPI) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _palette(png: bytes, colors: int = FRAME_COLORS) -> bytes:
    """A PNG requantised to a palette of ``colors`` colours (a figure's flat colours survive)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        rgb = im.convert("RGB")
    pal = rgb.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buf = io.BytesIO()
    pal.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def frame_png(figure: Callable, values: dict) -> bytes:
    """One static frame: ``figure(**values)`` as a palette PNG (the figure is closed)."""
    fig = figure(**values)
    try:
        return _palette(_png(fig))
    finally:
        plt.close(fig)


def _label(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    return f"{float(value):g}"


try:  # ipywidgets is an optional dependency: the figure functions work without it.
    import ipywidgets as _w

    _Base = _w.VBox
except ImportError:  # pragma: no cover - exercised only without ipywidgets
    _w = None
    _Base = object


def _slider(value, lo, hi, step, description, *, log=False, integer=False):
    if log:
        return _w.FloatLogSlider(value=value, base=10, min=np.log10(lo), max=np.log10(hi),
                                 step=step, description=description, continuous_update=False)
    cls = _w.IntSlider if integer else _w.FloatSlider
    return cls(value=value, min=lo, max=hi, step=step, description=description,
               continuous_update=False)


def _choice(options, value, description, *, slider=False):
    """A drop-down list (or, with ``slider``, a selection slider) over ``options``."""
    if slider:
        return _w.SelectionSlider(options=list(options), value=value, description=description,
                                  continuous_update=False)
    return _w.Dropdown(options=list(options), value=value, description=description)


def _same(a, b) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return bool(np.isclose(float(a), float(b), rtol=1e-9, atol=1e-12))


def _check_grid(grid: dict, defaults: dict) -> dict:
    if not 1 <= len(grid) <= 2:
        raise ValueError(f"grid must name one or two controls, got {list(grid)}")
    out = {}
    for name, values in grid.items():
        if name not in defaults:
            raise ValueError(f"grid names {name!r}, which is not a control; "
                             f"allowed: {sorted(defaults)}")
        values = list(values)
        if len(values) < 2:
            raise ValueError(f"grid[{name!r}] must hold at least 2 values, got {values}")
        if not any(_same(v, defaults[name]) for v in values):
            raise ValueError(f"grid[{name!r}] must hold the default {defaults[name]!r} (the "
                             f"frame shown before any script runs), got {values}")
        out[name] = values
    return out


class Explorer(_Base):
    """Controls above a figure that ``figure(**values)`` redraws when a control changes.

    Parameters
    ----------
    figure : callable
        ``figure(**params) -> matplotlib.figure.Figure``.
    controls : dict of str to ipywidgets.ValueWidget
        One control per keyword argument of ``figure``; their initial values are the defaults
        shown in the static book.
    title : str
        A heading above the controls.
    grid : dict of str to sequence, optional
        The static control: one or two control names, each with the values it takes in the
        HTML (each list holds the control's default). Every combination is drawn once, when
        the explorer is first displayed, by ``figure`` with the other controls at their
        defaults. Without a grid the static view is the default figure alone.
    """

    def __init__(self, figure: Callable, controls: dict, *, title: str = "",
                 grid: dict | None = None):
        if _w is None:  # pragma: no cover
            raise ImportError("Explorer needs ipywidgets: pip install 'diffnotes[widgets]'")
        self.figure = figure
        self.controls = dict(controls)
        self.title = title
        self.grid = _check_grid(grid, self.values) if grid else {}
        self.output = _w.Output()
        self.static_png = b""
        self._frames: list[bytes] | None = None
        header = [_w.HTML(f"<b>{html.escape(title)}</b>")] if title else []
        rows = [_w.HBox(list(self.controls.values())[i:i + 3])
                for i in range(0, len(self.controls), 3)]
        super().__init__(header + rows + [self.output])
        self.defaults = self.values
        for c in self.controls.values():
            c.observe(self._redraw, names="value")
        self._redraw()
        self.static_png = self._last_png

    @property
    def values(self) -> dict:
        """Current control values, as keyword arguments of ``figure``."""
        return {k: c.value for k, c in self.controls.items()}

    def _redraw(self, change=None):
        fig = self.figure(**self.values)
        self._last_png = _png(fig)
        plt.close(fig)
        self.output.outputs = ({
            "output_type": "display_data",
            "data": {"image/png": base64.b64encode(self._last_png).decode(),
                     "text/plain": "<Figure>"},
            "metadata": {},
        },)

    # ------------------------------------------------------------------ the static control
    def grid_points(self) -> list[dict]:
        """Keyword arguments of every frame, in row-major order of the grid."""
        names = list(self.grid)
        return [{**self.defaults, **dict(zip(names, combo, strict=True))}
                for combo in itertools.product(*self.grid.values())]

    def default_index(self) -> int:
        """Position of the default settings in :meth:`grid_points` (0 without a grid)."""
        k = 0
        for name, values in self.grid.items():
            i = next(i for i, v in enumerate(values) if _same(v, self.defaults[name]))
            k = k * len(values) + i
        return k

    def frames(self) -> list[bytes]:
        """One palette PNG per grid point (drawn once, then kept)."""
        if self._frames is None:
            k0 = self.default_index()
            # the default frame is the live figure already drawn (the same pixels, requantised)
            self._frames = [_palette(self.static_png) if k == k0 else frame_png(self.figure, p)
                            for k, p in enumerate(self.grid_points() or [self.defaults])]
        return self._frames

    def static_html(self) -> str:
        """The self-contained HTML control (default frame in an ``<img>``, inline script)."""
        return _static_html(self)

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs)
        # Static copies at the default settings, for renderers without a widget manager.
        bundle["image/png"] = base64.b64encode(self.static_png).decode()
        # DIFFNOTES_STATIC_FRAMES=0 skips drawing the frames (a live session that needs none)
        if os.environ.get("DIFFNOTES_STATIC_FRAMES", "1") != "0":
            bundle["text/html"] = self.static_html()
        return bundle


# The script of every static control: it finds its own <div>, reads the frames and swaps the
# <img> when a control moves (an index slider snaps to the grid; labels come from Python).
_SCRIPT = """(function (root) {
  var d = JSON.parse(root.querySelector('script.dn-explorer-data').textContent);
  var ctl = root.querySelectorAll('[data-dn-axis]');
  var img = root.querySelector('img.dn-explorer-frame');
  d.frames[d.index[+img.getAttribute('data-dn-index')]] = img.src;
  function show() {
    var k = 0, alt = [];
    for (var a = 0; a < ctl.length; a++) {
      var c = ctl[a], i = Math.max(0, Math.min(d.shape[a] - 1, Math.round(+c.value)));
      k = k * d.shape[a] + i;
      var lab = d.labels[a][i];
      if (c.type === 'range') {
        c.setAttribute('aria-valuetext', lab);
        root.querySelector('output[data-dn-axis-out="' + a + '"]').textContent = lab;
      }
      alt.push(d.names[a] + ' = ' + lab);
    }
    var f = d.frames[d.index[k]];
    img.src = f.indexOf('data:') === 0 ? f : 'data:image/png;base64,' + f;
    img.alt = d.title + ': ' + alt.join(', ');
    img.setAttribute('data-dn-index', k);
  }
  for (var a = 0; a < ctl.length; a++) ctl[a].addEventListener('input', show);
})(document.currentScript.parentNode);"""

_SLUG = re.compile(r"[^A-Za-z0-9_-]+")


def _static_html(explorer: Explorer) -> str:
    """The static control of ``explorer`` (see :class:`Explorer`)."""
    frames = explorer.frames()
    k0 = explorer.default_index()
    # identical frames (a control that does not matter at some setting) are stored once
    unique: dict[bytes, int] = {}
    index = [unique.setdefault(f, len(unique)) for f in frames]
    data = [base64.b64encode(f).decode() for f in unique]
    data[index[k0]] = None                       # the <img> below holds it
    names, labels, controls = [], [], []
    for a, (name, values) in enumerate(explorer.grid.items()):
        c = explorer.controls[name]
        desc = c.description or name
        labs = [_label(v) for v in values]
        i0 = next(i for i, v in enumerate(values) if _same(v, explorer.defaults[name]))
        names.append(desc)
        labels.append(labs)
        esc = html.escape(desc)
        if all(isinstance(v, str) for v in values):
            opts = "".join(f'<option value="{i}"{" selected" if i == i0 else ""}>'
                           f"{html.escape(lab)}</option>" for i, lab in enumerate(labs))
            controls.append(f'<label style="white-space:nowrap">{esc} '
                            f'<select data-dn-axis="{a}">{opts}</select></label>')
        else:
            controls.append(
                f'<span style="white-space:nowrap"><label>{esc} <input type="range" min="0" '
                f'max="{len(values) - 1}" step="1" value="{i0}" data-dn-axis="{a}" '
                f'aria-valuetext="{html.escape(labs[i0])}"></label> '
                f'<output data-dn-axis-out="{a}">{html.escape(labs[i0])}</output></span>')
    fixed = [f"{explorer.controls[k].description or k} = {_label(v)}"
             for k, v in explorer.defaults.items() if k not in explorer.grid]
    shown = ", ".join(f"{n} = {_label(explorer.defaults[k])}"
                      for n, k in zip(names, explorer.grid, strict=True))
    title = html.escape(explorer.title)
    payload = json.dumps({"title": explorer.title, "names": names, "labels": labels,
                          "shape": [len(v) for v in explorer.grid.values()], "index": index,
                          "frames": data}, separators=(",", ":")).replace("</", "<\\/")
    note = (f"{len(frames)} precomputed frames" if explorer.grid else "the default figure")
    note += (f"; fixed: {', '.join(fixed)}" if fixed and explorer.grid else "")
    note += ". Run the notebook for every control."
    return (
        f'<div class="dn-explorer" role="group" aria-label="{title}">'
        + (f'<p class="dn-explorer-title"><b>{title}</b></p>' if title else "")
        + '<div class="dn-explorer-controls" style="display:flex;flex-wrap:wrap;'
        'gap:0.3em 1.5em;align-items:center">' + "".join(controls) + "</div>"
        f'<img class="dn-explorer-frame" data-dn-index="{k0}" style="max-width:100%;'
        f'height:auto" alt="{title}{": " + html.escape(shown) if shown else ""}" '
        f'src="data:image/png;base64,{base64.b64encode(frames[k0]).decode()}">'
        f'<p class="dn-explorer-note" style="font-size:0.8em;margin:0">'
        f"{html.escape(note)}</p>"
        + (f'<script type="application/json" class="dn-explorer-data">{payload}</script>'
           f"<script>{_SCRIPT}</script>" if explorer.grid else "")
        + "</div>")


# --------------------------------------------------------------------------------------------
# Sweeps: an animation over one parameter (Matplotlib's to_jshtml, made offline)
# --------------------------------------------------------------------------------------------
def sweep(figure: Callable, name: str, values, *, interval_ms: int = 400, **fixed):
    """A parameter sweep as a self-contained JavaScript animation (``Animation.to_jshtml``).

    Draws ``figure(**fixed, name=value)`` for each value and plays the frames with a slider and
    play buttons that work in the static HTML book too (no kernel, no CDN).

    Parameters
    ----------
    figure : callable
        A figure function of this module, such as :func:`diffnotes.widgets.n_state_figure`.
    name : str
        The keyword argument of ``figure`` to sweep.
    values : sequence
        The values it takes, one frame each (at most 60).
    interval_ms : int
        Time between frames.
    **fixed
        Other keyword arguments of ``figure``.

    Returns
    -------
    IPython.display.HTML
    """
    from IPython.display import HTML
    from matplotlib import animation
    from matplotlib.image import imread

    values = list(values)
    if not 1 <= len(values) <= 60:
        raise ValueError(f"values must hold between 1 and 60 frames, got {len(values)}")
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be the name of a keyword argument, got {name!r}")
    frames = []
    for v in values:
        fig = figure(**{**fixed, name: v})
        frames.append(imread(io.BytesIO(_png(fig)), format="png"))
        plt.close(fig)
    h, w = max(f.shape[0] for f in frames), max(f.shape[1] for f in frames)
    fig = plt.figure(figsize=(w / 100, h / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    image = ax.imshow(frames[0])

    def show(k):
        image.set_data(frames[k])
        return (image,)

    anim = animation.FuncAnimation(fig, show, frames=len(frames), interval=interval_ms,
                                   blit=True)
    html_text = anim.to_jshtml(default_mode="once")
    plt.close(fig)
    return HTML(_offline_controls(html_text))


# Matplotlib's animation controls draw Font Awesome icons loaded from a CDN; offline readers
# (and the book's headless-browser check) would get a failed request and empty buttons.
_ICONS = {"fa fa-minus": "&minus;", "fa fa-fast-backward": "|&#9664;&#9664;",
          "fa fa-step-backward": "&#9664;|", "fa fa-play fa-flip-horizontal": "&#9664;",
          "fa fa-pause": "&#8214;", "fa fa-play": "&#9654;", "fa fa-step-forward": "|&#9654;",
          "fa fa-fast-forward": "&#9654;&#9654;|", "fa fa-plus": "+"}


def _offline_controls(text: str) -> str:
    """Drop the CDN stylesheet of an animation's HTML and draw its buttons with plain text."""
    text = re.sub(r'<link rel="stylesheet"\s*href="https?://[^"]*font-awesome[^"]*">', "", text)
    for cls, glyph in _ICONS.items():
        text = text.replace(f'<i class="{cls}"></i>', glyph)
    return text
