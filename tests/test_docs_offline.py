"""The documentation's formulas render without a network.

``docs/conf.py`` loads MathJax from ``_static/mathjax`` (bundled by the
``sphinx-mathjax-offline`` package) instead of a CDN. A tiny Sphinx project
with the same math extensions is built here and its page is checked to load
MathJax from a file that the build wrote.
"""

import ast
import importlib.util
import re
from pathlib import Path

import pytest

CONF = Path(__file__).resolve().parents[1] / "docs" / "conf.py"
OFFLINE = "sphinx-mathjax-offline"


def _extensions():
    tree = ast.parse(CONF.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                getattr(t, "id", None) == "extensions" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("docs/conf.py has no extensions list")


def test_conf_bundles_mathjax():
    ext = _extensions()
    assert OFFLINE in ext and "sphinx.ext.mathjax" in ext
    assert "mathjax_path" not in CONF.read_text().replace("# mathjax_path", "")


def test_math_page_loads_mathjax_from_the_site(tmp_path):
    sphinx_cmd = pytest.importorskip("sphinx.cmd.build")
    if importlib.util.find_spec(OFFLINE) is None:
        pytest.skip(f"{OFFLINE} is not installed (pip install -e '.[docs]')")
    src = tmp_path / "src"
    src.mkdir()
    math_ext = [e for e in _extensions() if "math" in e]
    (src / "conf.py").write_text(f"extensions = {math_ext!r}\n")
    (src / "index.rst").write_text(
        "Formula\n=======\n\n.. math::\n\n   s_k(x) = \\frac{1}{R}\\sum_r p_r(h_r(k) \\mid x)\n")
    out = tmp_path / "html"
    assert sphinx_cmd.build_main(["-q", "-W", "-b", "html", str(src), str(out)]) == 0
    html = (out / "index.html").read_text()
    scripts = re.findall(r'<script[^>]*src="([^"]*(?:mathjax|tex-)[^"]*)"', html,
                         flags=re.IGNORECASE)
    assert scripts, "no MathJax script on the page"
    for s in scripts:
        assert "://" not in s, f"MathJax comes from the network: {s}"
        target = (out / s.split("?")[0]).resolve()
        assert target.is_file() and target.stat().st_size > 10_000, s
    # the output fonts and the TeX input are there too (no fetch at view time)
    assert list((out / "_static" / "mathjax").rglob("*.woff"))
    assert "\\frac" in html
