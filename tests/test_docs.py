"""Documentation checks that are cheap enough for every test run.

The whole site (``make docs``, about a minute: it runs the gallery) is
built in CI separately. Here:

- a small Sphinx project, with the settings and hooks of ``docs/conf.py``,
  renders the API reference of every public name with warnings as errors
  (numpydoc parses every public docstring on the way);
- :func:`numpydoc.validate.validate` checks that every public function and
  estimator method documents its parameters and results.
"""

import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# numpydoc checks every public docstring must pass: a docstring and a summary
# exist, every parameter is documented and no unknown one is, and functions
# that return something say what.
REQUIRED_CHECKS = {"GL08", "SS01", "PR01", "PR02", "RT01"}


def _lsh_class():
    import skmach

    cls = getattr(skmach, "LSHSparseMLPClassifier", None)
    if cls is None:
        try:
            from skmach.neural_network import LSHSparseMLPClassifier as cls
        except ImportError:
            return None
    return cls


def _public_objects():
    """``(qualified name, object)`` for every public name and estimator method."""
    import skmach
    import skmach.datasets
    import skmach.metrics

    out = []
    estimators = [skmach.MACHClassifier]
    lsh = _lsh_class()
    if lsh is not None:
        estimators.append(lsh)
    for cls in estimators:
        out.append((f"{cls.__module__}.{cls.__name__}", cls))
        for name, member in vars(cls).items():
            if not name.startswith("_") and inspect.isfunction(member):
                out.append((f"{cls.__module__}.{cls.__name__}.{name}", member))
    out.append(("skmach.predict_topk", skmach.predict_topk))
    for mod in (skmach.metrics, skmach.datasets):
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.isfunction(obj):
                out.append((f"{mod.__name__}.{name}", obj))
    return out


def _params():
    try:
        objs = _public_objects()
    except Exception as exc:  # pragma: no cover - import problem reported elsewhere
        return [pytest.param(None, marks=pytest.mark.skip(reason=str(exc)))]
    params = []
    for name, _ in objs:
        params.append(pytest.param(name, id=name.replace("skmach.", "")))
    return params


@pytest.mark.parametrize("name", _params())
def test_numpydoc_validation(name):
    validate = pytest.importorskip("numpydoc.validate")
    result = validate.validate(name)
    obj = dict(_public_objects())[name]
    errors = [(code, msg) for code, msg in result["errors"] if code in REQUIRED_CHECKS]
    if inspect.isfunction(obj) and "Yields" in (obj.__doc__ or ""):
        # iter_* functions return a generator and document what it yields
        errors = [(c, m) for c, m in errors if c != "RT01"]
    assert not errors, f"{name}: " + "; ".join(f"{c} {m}" for c, m in errors)


def test_sphinx_api_reference(tmp_path):
    """Render the API reference with the project's Sphinx settings, -W."""
    pytest.importorskip("sphinx")
    pytest.importorskip("numpydoc")
    pytest.importorskip("pydata_sphinx_theme")
    import skmach.datasets
    import skmach.metrics

    src = tmp_path / "src"
    (src / "_templates" / "autosummary").mkdir(parents=True)
    for kind, directive in (("class", "autoclass"), ("function", "autofunction")):
        opts = "   :members:\n" if kind == "class" else ""
        (src / "_templates" / "autosummary" / f"{kind}.rst").write_text(
            "{{ objname | escape | underline }}\n\n.. currentmodule:: {{ module }}\n\n"
            f".. {directive}:: {{{{ objname }}}}\n{opts}"
        )
    (src / "conf.py").write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(DOCS)!r})
        from conf import *  # the project's settings and docstring hooks
        from conf import setup
        extensions = [e for e in extensions if e != "sphinx_gallery.gen_gallery"]
        templates_path = ["_templates"]
        html_static_path = []
        html_theme = "basic"
        html_theme_options = {{}}
        html_sidebars = {{}}
        exclude_patterns = []
        """))
    classes = ["skmach.MACHClassifier"]
    lsh = _lsh_class()
    if lsh is not None:
        classes.append(f"{lsh.__module__}.{lsh.__name__}")
    functions = [f"{m.__name__}.{n}" for m in (skmach.metrics, skmach.datasets)
                 for n in m.__all__ if inspect.isfunction(getattr(m, n))]
    functions.append("skmach.cli.main")

    def table(names, template):
        return (f".. autosummary::\n   :toctree: generated/\n   :template: autosummary/{template}.rst\n\n"
                + "".join(f"   {n}\n" for n in names))

    (src / "index.rst").write_text(
        "API\n===\n\n" + table(classes, "class") + "\n" + table(functions, "function")
        + "\n.. toctree::\n\n   cli\n"
    )
    (src / "cli.rst").write_text((DOCS / "cli.rst").read_text())
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + sys.path))
    res = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         str(src), str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    html = (tmp_path / "out" / "generated" / "skmach.MACHClassifier.html").read_text()
    assert "skmach.MACHClassifier.predict_topk" in html and "n_buckets" in html


def test_docs_pages_exist():
    for page in ["index.rst", "install.rst", "cli.rst", "api.rst", "benchmarks.rst",
                 "user_guide/mach.rst", "user_guide/lsh.rst", "user_guide/guarantees.rst"]:
        assert (DOCS / page).is_file(), page
    api = (DOCS / "api.rst").read_text()
    import skmach.datasets
    import skmach.metrics

    for name in ["MACHClassifier", "LSHSparseMLPClassifier",
                 *skmach.metrics.__all__, *skmach.datasets.__all__]:
        assert name in api, f"{name} missing from docs/api.rst"
    assert "make demo" in (DOCS / "install.rst").read_text()
    assert "make test" in (DOCS / "install.rst").read_text()
