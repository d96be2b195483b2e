"""Optional dependencies (:mod:`diffnotes._optional`): a module that needs a missing extra
fails at import with an ImportError naming the extra, the core imports without any extra, and
``pyproject.toml``'s extras hold every third-party package the package imports.

A missing package is simulated in a fresh interpreter by ``sys.modules[name] = None``, which
makes ``import name`` fail exactly as if it were not installed.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from diffnotes import _optional

ROOT = Path(__file__).resolve().parents[1]

# packages that arrive with a listed distribution rather than on their own
COMES_WITH = {"PIL": "matplotlib", "IPython": "ipywidgets"}
# import name -> distribution name, where they differ
DISTRIBUTION = {"ot": "pot", "sklearn": "scikit-learn"}


def _without(missing, code):
    """Run ``code`` in a fresh interpreter in which the packages ``missing`` cannot be imported;
    returns (exit status, stdout + stderr)."""
    prelude = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in missing)
    proc = subprocess.run([sys.executable, "-c", prelude + code], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize("module, missing", [
    ("diffnotes.score", "torch"), ("diffnotes.score", "tqdm"), ("diffnotes.dsb", "torch"),
    ("diffnotes.images", "torch"), ("diffnotes.images", "tqdm"),
    ("diffnotes.images.training", "torch"),     # a submodule names its package
    ("diffnotes.flow_train", "torch"), ("diffnotes.guidance", "torch"),
    ("diffnotes.ot_flow_train", "torch"),
])
def test_missing_extra_fails_at_import_naming_it(module, missing):
    code = (f"try:\n    import {module}\nexcept ImportError as err:\n    print('ERR', err)\n"
            "else:\n    print('imported')\n")
    rc, out = _without([missing], code)
    assert rc == 0, out
    owner = "diffnotes.images" if module.startswith("diffnotes.images") else module
    assert f"ERR {owner} needs {missing}: pip install 'diffnotes[learn]'" in out, out


def test_core_imports_without_the_extras():
    rc, out = _without(["torch", "tqdm", "sklearn", "ipywidgets"],
                       "import diffnotes\nfrom diffnotes import bridge, ctmc, data, ehrenfest, "
                       "metrics, mixtures, plotting, schedules, sde, utils\nprint('ok')\n")
    assert rc == 0 and out.strip().endswith("ok"), out


def test_require():
    assert _optional.require("torch", extra="learn", module="m").__name__ == "torch"
    with pytest.raises(ValueError, match="package"):
        _optional.require("numpy", extra="learn", module="m")
    with pytest.raises(ValueError, match="package"):
        _optional.require("torch", extra="no-such-extra", module="m")
    with pytest.raises(AttributeError, match="no_such_needs"):
        _optional.no_such_needs  # noqa: B018


def test_require_names_the_distribution(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(ImportError, match=r"^m needs sklearn \(the scikit-learn distribution\): "
                                          r"pip install 'diffnotes\[learn\]'$"):
        _optional.require("sklearn", extra="learn", module="m")


def test_a_broken_package_keeps_its_own_error(monkeypatch):
    """Only a missing package becomes the pip hint: a dependency missing *inside* an
    installed package is reported as itself."""
    def broken(name, *args, **kwargs):
        raise ModuleNotFoundError("No module named 'typing_extensions'",
                                  name="typing_extensions")

    monkeypatch.setattr(_optional.importlib, "import_module", broken)
    with pytest.raises(ModuleNotFoundError, match="typing_extensions"):
        _optional.require("torch", extra="learn", module="m")


def _extras():
    tomllib = pytest.importorskip("tomllib")     # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(reqs):
        return {r.split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower()
                for r in reqs}

    extras = {k: names(v) for k, v in project["optional-dependencies"].items()}
    for k, reqs in project["optional-dependencies"].items():   # resolve diffnotes[a,b]
        for r in reqs:
            if r.startswith("diffnotes["):
                extras[k] = set().union(*(extras[e] for e in r[10:-1].split(",")))
    return names(project["dependencies"]), extras


def test_pyproject_extras_hold_what_the_modules_import():
    core, extras = _extras()
    assert core == {"numpy", "scipy", "matplotlib", "pot"}
    for extra, packages in _optional.EXTRAS.items():
        assert set(packages.values()) == extras[extra], extra
    assert extras["all"] == extras["learn"] | extras["widgets"]
    listed = core.union(*extras.values())
    imported = set()
    for path in (ROOT / "diffnotes").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = {m for m in imported if m not in sys.stdlib_module_names and m != "diffnotes"}
    assert {"torch", "tqdm", "sklearn", "ipywidgets", "ot"} <= third_party   # the scan works
    for name in sorted(third_party):
        dist = COMES_WITH.get(name) or DISTRIBUTION.get(name, name)
        assert dist.lower() in listed, f"diffnotes imports {name}, which no extra installs"
    for module, extra, packages in _optional.NEEDS.values():
        assert set(packages) <= set(_optional.EXTRAS[extra]), module
