"""Checks of the gallery examples in ``examples/``.

Every example is executed by ``make docs`` (sphinx-gallery; about 45 s for
all of them on two cores). Here the cheap checks run always, the quickest
example is executed, and the others run only with ``SKMACH_RUN_EXAMPLES=1``
(they are marked ``slow``), to keep the default test suite fast.
"""

import ast
import os
import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("plot_*.py"))
QUICK = {"plot_count_min_sketch.py"}
RUN_ALL = os.environ.get("SKMACH_RUN_EXAMPLES") == "1"


def test_gallery_layout():
    assert (EXAMPLES / "README.rst").is_file()
    names = {p.name for p in SCRIPTS}
    for required in ["plot_mach_quickstart.py", "plot_mach_buckets_repetitions.py",
                     "plot_mach_multilabel.py", "plot_grid_search.py",
                     "plot_lsh_active_fraction.py", "plot_count_min_sketch.py"]:
        assert required in names


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_example_is_a_gallery_script(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    doc = ast.get_docstring(tree)
    assert doc, f"{path.name} needs a module docstring (the gallery page header)"
    lines = [line for line in doc.splitlines() if line.strip()]
    # sphinx-gallery title: over- and underlined with '=' as long as the title
    assert set(lines[0]) == {"="} and set(lines[2]) == {"="}, path.name
    assert len(lines[0]) >= len(lines[1]) and len(lines[2]) >= len(lines[1]), path.name
    assert "plt.show()" in path.read_text() or "matplotlib" in path.read_text()


def _run(path, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(path.parent)
    try:
        runpy.run_path(str(path), run_name="__main__")
    finally:
        plt.close("all")


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, marks=[] if p.name in QUICK else [
        pytest.mark.slow,
        pytest.mark.skipif(not RUN_ALL, reason="slow: set SKMACH_RUN_EXAMPLES=1 "
                           "(make docs runs every example)")]) for p in SCRIPTS],
    ids=lambda p: p.name,
)
def test_example_runs(path, monkeypatch):
    _run(path, monkeypatch)
