"""The notebook path: a gallery example as a Jupyter notebook, run by a real kernel.

sphinx-gallery turns every example into a notebook (the "Download Jupyter
notebook" link of the gallery). Here one example is converted by the same
converter, a cell fitting ``MACHClassifier(verbose=1)`` and one calling
:func:`skmach.predict_topk` on a pipeline are appended, and the notebook is
executed by an IPython kernel through nbclient, as Jupyter would. Skipped
when nbclient, nbformat, ipykernel or sphinx-gallery is missing.
"""

import inspect
import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
sg_notebook = pytest.importorskip("sphinx_gallery.notebook")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXAMPLE = "plot_count_min_sketch.py"  # the quickest example (a few seconds)
WIDGET = "application/vnd.jupyter.widget-view+json"

FIT_CELL = """\
from skmach import MACHClassifier
from skmach.datasets import make_extreme_classification

X, y = make_extreme_classification(n_samples=600, n_features=80, n_classes=30,
                                   random_state=0)
clf = MACHClassifier(n_buckets=8, n_repetitions=3, n_epochs=4, verbose=1,
                     random_state=0).fit(X, y)
print("fitted", clf.loss_curve_.shape)
"""

TOPK_CELL = """\
import skmach
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler

pipe = make_pipeline(MaxAbsScaler(), MACHClassifier(n_buckets=8, n_repetitions=3,
                                                    random_state=0)).fit(X, y)
labels, scores = skmach.predict_topk(pipe, X[:4], k=3)
print("top-k", labels.shape)
"""


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("notebook")
    src = tmp / EXAMPLE
    shutil.copy(EXAMPLES / EXAMPLE, src)
    # the converter sphinx-gallery uses for the gallery's notebooks
    sg_notebook.python_to_jupyter_cli([str(src)])
    path = src.with_suffix(".ipynb")
    nb = nbformat.read(path, as_version=4)
    n_example_cells = sum(c.cell_type == "code" for c in nb.cells)
    assert n_example_cells >= 2
    nb.cells.append(nbformat.v4.new_code_cell(FIT_CELL))
    nb.cells.append(nbformat.v4.new_code_cell(TOPK_CELL))
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp)}})
    # raises CellExecutionError, with the cell and its traceback, if any cell fails
    client.execute()
    return nb


def _outputs(cell):
    return cell.get("outputs", [])


def _text(cell):
    parts = []
    for out in _outputs(cell):
        if out.output_type == "stream":
            parts.append(out.text)
        elif "data" in out:
            parts.append(str(out.data.get("text/plain", "")))
    return "".join(parts)


def test_gallery_notebook_runs_in_a_jupyter_kernel(executed):
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "a cell did not run"
    errors = [o for c in code for o in _outputs(c) if o.output_type == "error"]
    assert not errors
    # the example's own output, then the two appended cells
    assert any("bucket" in _text(c).lower() or "class" in _text(c).lower()
               for c in code[:-2])
    assert "fitted (4,)" in _text(code[-2])
    assert "top-k (4, 3)" in _text(code[-1])


def _uses_progress_bar():
    from skmach.mach import _mach

    return "progress_bar" in inspect.getsource(_mach)


@pytest.mark.xfail(not _uses_progress_bar(), strict=True,
                   reason="skmach/mach/_mach.py does not call progress_bar yet")
def test_verbose_fit_draws_a_tqdm_widget(executed):
    pytest.importorskip("ipywidgets")
    fit = [c for c in executed.cells if c.cell_type == "code"][-2]
    widgets = [o for o in _outputs(fit) if WIDGET in o.get("data", {})]
    assert widgets, [o.get("data", o.get("text")) for o in _outputs(fit)]
    # the widget's text form is tqdm's bar over epochs x repetitions (4 x 3);
    # it is drawn once, then updated through widget messages
    plain = " ".join(str(o["data"].get("text/plain", "")) for o in widgets)
    assert "|" in plain and "/12" in plain, plain
