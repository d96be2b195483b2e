"""Widgets without a browser: every explorer's figure function runs at its controls' extreme
values (one control at a time, then all at their minimum, then all at their maximum) and draws a
figure without error or warning (pytest turns warnings into errors, see pyproject.toml)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from diffnotes import widgets  # noqa: E402


def extremes(control):
    """The smallest and largest value a control can take."""
    if hasattr(control, "options") and control.options:
        values = [v for _, v in control.options] if isinstance(control.options[0], tuple) \
            else list(control.options)
        return [min(values), max(values)]
    if control.__class__.__name__ == "FloatLogSlider":
        return [control.base ** control.min, control.base ** control.max]
    return [control.min, control.max]


def settings(explorer):
    """Defaults with one control at an extreme, then all at their minima, then all maxima."""
    base = explorer.values
    out = []
    for name, c in explorer.controls.items():
        for v in extremes(c):
            out.append({**base, name: v})
    out.append({k: extremes(c)[0] for k, c in explorer.controls.items()})
    out.append({k: extremes(c)[1] for k, c in explorer.controls.items()})
    return out


def check_figure(fig):
    assert isinstance(fig, Figure)
    assert fig.axes, "figure has no axes"
    for ax in fig.axes:
        assert ax.lines or ax.patches or ax.collections, f"empty axes {ax.get_title()!r}"
        for line in ax.lines:
            y = np.asarray(line.get_ydata(), dtype=float)
            assert not np.any(np.isnan(y)), f"NaN in a line of {ax.get_title()!r}"
    plt.close(fig)


@pytest.mark.parametrize("name", sorted(widgets.EXPLORERS))
def test_explorer_figures_at_extreme_control_values(name):
    explorer = widgets.EXPLORERS[name]()
    for params in settings(explorer):
        check_figure(explorer.figure(**params))


def test_moving_a_slider_redraws_but_keeps_the_static_default():
    explorer = widgets.two_state_explorer()
    default_png = explorer.static_png
    before = explorer.output.outputs[0]["data"]["image/png"]
    explorer.controls["u_ab"].value = 3.0
    after = explorer.output.outputs[0]["data"]["image/png"]
    assert after != before
    assert explorer.static_png == default_png


def test_sweep_animation_is_self_contained_html_with_one_frame_per_value():
    html = widgets.sweep(widgets.two_state_figure, "u_ab", [0.5, 1.0, 2.0], n_chains=50).data
    assert html.count("data:image/png") == 3
    assert "<script" in html and "https://" not in html and "class=\"fa " not in html
    with pytest.raises(ValueError, match="values"):
        widgets.sweep(widgets.two_state_figure, "u_ab", [])
    with pytest.raises(ValueError, match="name"):
        widgets.sweep(widgets.two_state_figure, "not a name", [1.0])
