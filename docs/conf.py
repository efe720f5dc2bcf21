"""Sphinx configuration of the skmach documentation (``make docs``)."""

import glob
import os
import re
import sys
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.abspath(os.path.join(HERE, "..")))

import skmach  # noqa: E402

if not hasattr(skmach, "LSHSparseMLPClassifier"):
    # Until the estimator is exported from the top-level package, document it
    # from where it lives (this only affects the documentation build).
    try:
        from skmach.neural_network import LSHSparseMLPClassifier

        skmach.LSHSparseMLPClassifier = LSHSparseMLPClassifier
    except ImportError:
        pass

os.environ.setdefault("MPLBACKEND", "agg")
warnings.filterwarnings("ignore", message="Matplotlib is currently using agg")

project = "skmach"
copyright = "skmach developers"
author = "skmach developers"
version = release = skmach.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    # MathJax 3 shipped inside a PyPI package, copied into _static/mathjax:
    # formulas render without a network (no CDN).
    "sphinx-mathjax-offline",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
default_role = "literal"

# -- API reference -----------------------------------------------------------
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# No network during the build: intersphinx is off, so references to
# scikit-learn, NumPy and SciPy objects stay plain text.
nitpicky = False

# -- Gallery ---------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"/_",
    "doc_module": ("skmach",),
    "backreferences_dir": "generated/backreferences",
    "reference_url": {"skmach": None},
    "abort_on_example_error": True,
    "remove_config_comments": True,
    "download_all_examples": False,
    "show_signature": False,
    "min_reported_time": 1,
    "matplotlib_animations": False,
}
if os.environ.get("SKMACH_DOCS_NO_GALLERY"):  # quick builds: do not run the examples
    sphinx_gallery_conf["plot_gallery"] = "False"

# -- HTML --------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skmach {release}"
html_static_path = ["_static"]
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"install": [], "cli": [], "benchmarks": []}
html_show_sourcelink = False


# -- Benchmark tables ------------------------------------------------------
def _write_benchmarks_include():
    """List ``benchmarks/results/*.md`` as literal blocks for benchmarks.rst."""
    out_dir = os.path.join(HERE, "generated")
    os.makedirs(out_dir, exist_ok=True)
    results = os.path.join(HERE, "..", "benchmarks", "results")
    files = sorted(p for p in glob.glob(os.path.join(results, "*.md"))
                   if os.path.basename(p) != "REPORT.md")  # REPORT.md repeats them all
    lines = []
    for path in sorted(glob.glob(os.path.join(results, "*.png"))):  # from run.py
        lines += [f".. image:: ../benchmarks/results/{os.path.basename(path)}", ""]
    for path in files:
        name = os.path.basename(path)
        lines += [name, "-" * len(name), "",
                  f".. literalinclude:: ../benchmarks/results/{name}",
                  "   :language: markdown", ""]
    if not files:
        lines = ["No benchmark results are checked in yet "
                 "(``benchmarks/results/*.md``).", ""]
    text = "\n".join(lines)
    target = os.path.join(out_dir, "benchmarks.inc")
    old = open(target).read() if os.path.exists(target) else None
    if old != text:
        with open(target, "w") as f:
            f.write(text)


_write_benchmarks_include()


# -- Docstring hooks ---------------------------------------------------------
_TYPE_LINE = re.compile(r"^(\s*[\w*][\w, *]* : )(.*)$")
_TRAILING_UNDERSCORE = re.compile(r"(?<![`\w\\])([A-Za-z]\w*?)_(?=[\s),.;]|$)")


def _escape_types(app, what, name, obj, options, lines):
    """Escape ``name_`` in numpydoc type descriptions (RST would read a link)."""
    for i, line in enumerate(lines):
        m = _TYPE_LINE.match(line)
        if m and "`" not in m.group(2):
            lines[i] = m.group(1) + _TRAILING_UNDERSCORE.sub(r"\1\\_", m.group(2))


def _skip_member(app, what, name, obj, skip, options):
    """Leave out scikit-learn's generated metadata-routing setters."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return skip


def setup(app):
    app.connect("autodoc-process-docstring", _escape_types, priority=100)
    app.connect("autodoc-skip-member", _skip_member)
