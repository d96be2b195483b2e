"""The static twin of every explorer: its frames cover the grid, the default frame is the live
figure, the HTML control is self-contained and within its weight budget (the browser check in
tools/check_html.py drives the same controls in Chromium)."""

import base64
import io
import json
import re

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from diffnotes import widgets  # noqa: E402
from diffnotes.widgets import _static  # noqa: E402

_BUILT: dict = {}


def built(name):
    """One explorer per name for the whole module, with its frames drawn once."""
    if name not in _BUILT:
        explorer = widgets.EXPLORERS[name]()
        explorer.frames()
        _BUILT[name] = explorer
    return _BUILT[name]


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("RGB"), dtype=float)


def payload(html: str) -> dict:
    m = re.search(r'<script type="application/json" class="dn-explorer-data">(.*?)</script>',
                  html, re.S)
    assert m, "no frame data in the static control"
    return json.loads(m.group(1))


@pytest.mark.parametrize("name", sorted(widgets.EXPLORERS))
def test_frames_cover_the_grid_and_the_default_frame_is_the_live_figure(name):
    explorer = built(name)
    assert 1 <= len(explorer.grid) <= 2
    n_points = int(np.prod([len(v) for v in explorer.grid.values()]))
    frames = explorer.frames()
    assert len(frames) == len(explorer.grid_points()) == n_points
    assert all(f.startswith(b"\x89PNG") for f in frames)
    # the default frame against the live widget's figure at the default values (its only
    # difference is the palette: at most a few grey levels on average, same size)
    k0 = explorer.default_index()
    assert explorer.grid_points()[k0] == explorer.values
    live = pixels(explorer.static_png)
    frame = pixels(frames[k0])
    assert frame.shape == live.shape
    assert np.abs(frame - live).mean() < 2.0
    # a frame at another grid point is a different picture (the grid parameters are used)
    others = [f for k, f in enumerate(frames) if k != k0]
    assert any(p.shape != live.shape or np.abs(p - live).mean() > 0.5
               for p in map(pixels, others))


@pytest.mark.parametrize("name", sorted(widgets.EXPLORERS))
def test_static_control_is_self_contained_and_within_budget(name):
    explorer = built(name)
    html = explorer.static_html()
    assert len(html.encode()) <= widgets.FRAME_BUDGET_BYTES, f"{len(html) / 1e6:.2f} MB"
    # nothing from another host, no widget manager, no require.js
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "require" not in html and "widget-state" not in html
    # the default frame is a plain <img> (visible before any script runs)
    img = re.search(r'<img class="dn-explorer-frame" data-dn-index="(\d+)"[^>]*'
                    r'src="data:image/png;base64,([^"]+)"', html)
    assert img and int(img.group(1)) == explorer.default_index()
    assert base64.b64decode(img.group(2)) == explorer.frames()[explorer.default_index()]
    data = payload(html)
    assert data["shape"] == [len(v) for v in explorer.grid.values()]
    assert len(data["index"]) == len(explorer.frames())
    # every grid point maps to its own frame (identical frames are stored once)
    for k, i in enumerate(data["index"]):
        stored = data["frames"][i]
        if stored is not None:
            assert base64.b64decode(stored) == explorer.frames()[k]
        else:
            assert explorer.frames()[k] == explorer.frames()[explorer.default_index()]
    # one control per grid axis, at the default position, showing the default's label
    for a, (key, values) in enumerate(explorer.grid.items()):
        label = _static._label(explorer.values[key])
        assert data["labels"][a][values.index(next(v for v in values
                                                   if _static._same(v, explorer.values[key])))
                                 ] == label
        assert f'data-dn-axis="{a}"' in html


@pytest.mark.parametrize("name", sorted(widgets.EXPLORERS))
def test_mime_bundle_carries_widget_view_static_html_and_png(name):
    explorer = built(name)
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/html"] == explorer.static_html()
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")


def test_bad_grids_raise_naming_the_argument():
    fig, controls = widgets.two_state_figure, widgets.two_state_explorer().controls
    with pytest.raises(ValueError, match="grid must name one or two"):
        widgets.Explorer(fig, controls, grid={"u_ab": [1.0, 2.0], "u_ba": [0.5, 1.0],
                                              "T": [6.0, 8.0]})
    with pytest.raises(ValueError, match="not a control"):
        widgets.Explorer(fig, controls, grid={"rate": [1.0, 2.0]})
    with pytest.raises(ValueError, match="must hold the default"):
        widgets.Explorer(fig, controls, grid={"u_ab": [2.0, 3.0]})
    with pytest.raises(ValueError, match="at least 2 values"):
        widgets.Explorer(fig, controls, grid={"u_ab": [1.0]})


def test_n_state_figure_has_integer_state_ticks():
    fig = widgets.n_state_figure(n=3)
    ticks = fig.axes[0].get_xticks()
    assert np.allclose(ticks, np.round(ticks))


def test_static_frames_can_be_switched_off_for_a_live_session(monkeypatch):
    monkeypatch.setenv("DIFFNOTES_STATIC_FRAMES", "0")
    explorer = widgets.two_state_explorer()
    bundle = explorer._repr_mimebundle_()
    assert "text/html" not in bundle and explorer._frames is None
    assert "application/vnd.jupyter.widget-view+json" in bundle and "image/png" in bundle
