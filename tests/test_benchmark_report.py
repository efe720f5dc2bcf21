"""``benchmarks/run.py``: the suites it names exist and its report gathers them.

The benchmarks themselves take minutes to hours and are not run here.
"""

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def run_module():
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_suite_names_a_script(run_module):
    for name, (full, quick, files) in run_module.SUITES.items():
        assert (BENCH / full[0]).is_file(), name
        assert quick[0] == full[0], name
        assert files, name


def _write(folder, name, payload, markdown):
    (folder / f"{name}.json").write_text(json.dumps(payload))
    (folder / f"{name}.md").write_text(markdown)


def test_report_gathers_tables_and_plots(run_module, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    _write(tmp_path, "xc_peers", {"rows": [
        {"dataset": "bibtex", "system": "skmach MACHClassifier", "fit_s": 0.5, "P@1": 0.62},
        {"dataset": "bibtex", "system": "napkinXC PLT", "fit_s": 0.6, "P@1": 0.63},
        {"dataset": "bibtex", "system": "Omikuji (Parabel)", "error": "ImportError"},
    ]}, "# MACH against the peers\n\n| system | P@1 |\n|---|---|\n| MACH | 0.620 |\n")
    rows = [{"n_classes": K, "fit_s": 1.0, "fit_peak_mb": 500.0, "model_mb": 64.0,
             "classes_mb": K * 8 / 2**20, "speedup": 10.0, "recall@5_of_exact": 0.99}
            for K in (10**4, 10**5)]
    _write(tmp_path, "scale_synthetic", {"rows": rows}, "# Scale\n\nsome table\n")
    runs = [{"suite": "xc", "rc": 0, "wall_s": 3.0, "command": "python benchmarks/bench_xc.py"}]
    payload = run_module.write_report(tmp_path, runs)

    report = (tmp_path / "REPORT.md").read_text()
    assert "## MACH against the peers" in report  # headings demoted under the title
    assert "| MACH | 0.620 |" in report and "some table" in report
    assert "`python benchmarks/bench_xc.py`" in report
    assert set(payload["plots"]) == {"scale.png", "peers.png"}
    for p in payload["plots"]:
        assert (tmp_path / p).stat().st_size > 1000
        assert f"]({p})" in report
    stored = json.loads((tmp_path / "report.json").read_text())
    assert set(stored["results"]) == {"xc_peers", "scale_synthetic"}


def test_report_of_an_empty_folder(run_module, tmp_path):
    payload = run_module.write_report(tmp_path)
    assert payload["results"] == {} and payload["plots"] == []
    assert (tmp_path / "REPORT.md").read_text().startswith("# skmach benchmark report")
