"""Opening a chapter as a notebook (``make lab``, jupytext) and saving it unchanged leaves the
chapter byte-identical: jupytext.toml keeps the jupytext version and the kernel's metadata out
of the header."""

import subprocess
import sys
from pathlib import Path

import jupytext
import pytest
from jupytext.config import find_jupytext_configuration_file, load_jupytext_config

REPO = Path(__file__).resolve().parent.parent
CHAPTERS = sorted(p for p in (REPO / "book").glob("*.md") if p.read_text().startswith("---\n"))


def test_the_chapters_find_the_repository_jupytext_config():
    assert CHAPTERS, "no MyST notebooks in book/"
    assert Path(find_jupytext_configuration_file(str(REPO / "book"))) == REPO / "jupytext.toml"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_saving_an_unchanged_chapter_from_jupyterlab_keeps_it_byte_identical(chapter):
    config = load_jupytext_config(str(chapter.parent))
    text = chapter.read_text(encoding="utf8")
    nb = jupytext.reads(text, fmt="md:myst")
    # what a running kernel adds to the notebook before JupyterLab saves it
    nb.metadata["language_info"] = {"name": "python", "version": sys.version.split()[0]}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    assert jupytext.writes(nb, fmt="md:myst", config=config) == text


def test_cli_round_trip_through_ipynb_is_byte_identical(tmp_path):
    chapter = CHAPTERS[0]
    ipynb, back = tmp_path / "c.ipynb", tmp_path / "c.md"
    (tmp_path / "jupytext.toml").write_bytes((REPO / "jupytext.toml").read_bytes())
    run = [sys.executable, "-m", "jupytext", "--quiet"]
    subprocess.run([*run, "--to", "ipynb", "-o", str(ipynb), str(chapter)], check=True)
    subprocess.run([*run, "--to", "myst", "-o", str(back), str(ipynb)], check=True)
    assert back.read_bytes() == chapter.read_bytes()
