"""End-to-end tests of the ``skmach`` command line on small generated files."""

import os
import subprocess
import sys

import joblib
import numpy as np
import pytest

from skmach import cli
from skmach.datasets import dump_xc, load_xc, make_extreme_classification
from skmach.metrics import precision_at_k, propensity_scores, psp_at_k

SMALL = ["--n-buckets", "8", "--n-repetitions", "4", "--n-epochs", "4",
         "--learning-rate", "0.1", "-q"]


@pytest.fixture(scope="module")
def xc_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("xc")
    X, Y = make_extreme_classification(400, 200, 30, multilabel=True, random_state=0)
    dump_xc(d / "train.txt", X[:300], Y[:300])
    dump_xc(d / "test.txt", X[300:], Y[300:])
    return d


@pytest.fixture(scope="module")
def tsv_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tsv")
    rng = np.random.RandomState(0)
    words = {"red": "apple cherry", "green": "lime grass", "blue": "sky sea"}
    names = sorted(words)
    lines = []
    for i in range(160):
        labs = list(rng.choice(names, size=rng.randint(1, 3), replace=False))
        lines.append(" ".join(words[w] for w in labs) + f" w{i % 5}\t" + ",".join(labs))
    (d / "train.tsv").write_text("\n".join(lines[:120]) + "\n")
    (d / "test.tsv").write_text("\n".join(lines[120:]) + "\tunseen\n")  # one unknown label
    (d / "raw.txt").write_text("apple cherry\nsky sea\n")
    return d


def run(argv, capsys):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def _metrics(out):
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] in ("P", "nDCG", "PSP"):
            rows[parts[0]] = [float(v) for v in parts[1:]]
    return rows


def test_xc_fit_evaluate_predict(xc_files, tmp_path, capsys):
    model = tmp_path / "m.joblib"
    status, out, _ = run(["fit", "--train", xc_files / "train.txt", "--model", model,
                          "--random-state", "0", *SMALL], capsys)
    assert status == 0 and model.exists() and "saved" in out
    bundle = cli.load_model(model)
    assert bundle["format"] == "xc" and bundle["task"] == "multilabel"

    status, out, _ = run(["evaluate", "--model", model, "--test", xc_files / "test.txt",
                          "--k", "1", "3", "--propensity-A", "0.55", "--propensity-B", "1.5",
                          "--chunk-size", "30", "-q"], capsys)
    assert status == 0
    rows = _metrics(out)
    assert set(rows) == {"P", "nDCG", "PSP"} and len(rows["P"]) == 2
    # same numbers as the library on the whole file
    Xtr, Ytr = load_xc(xc_files / "train.txt")
    X, Y = load_xc(xc_files / "test.txt")
    idx, _ = bundle["model"].predict_topk(X, 3)
    assert rows["P"][0] == pytest.approx(precision_at_k(Y, idx, k=1), abs=1e-4)
    assert rows["P"][1] == pytest.approx(precision_at_k(Y, idx, k=3), abs=1e-4)
    p = propensity_scores(Ytr)
    assert rows["PSP"][1] == pytest.approx(psp_at_k(Y, idx, k=3, propensities=p), abs=1e-4)
    assert rows["P"][0] > 0.3

    preds = tmp_path / "preds.tsv"
    status, _, err = run(["predict", "--model", model, "--input", xc_files / "test.txt",
                          "--k", "3", "--output", preds, "--chunk-size", "40"], capsys)
    assert status == 0 and "predict" in err  # progress bar on stderr
    lines = preds.read_text().splitlines()
    assert len(lines) == 100
    pairs = [p.rsplit(":", 1) for p in lines[0].split("\t")]
    assert [int(lab) for lab, _ in pairs] == idx[0].tolist()
    scores = [float(s) for _, s in pairs]
    assert scores == sorted(scores, reverse=True)


def test_tsv_pipeline_and_unknown_labels(tsv_files, tmp_path, capsys):
    model = tmp_path / "t.joblib"
    status, _, _ = run(["fit", "--train", tsv_files / "train.tsv", "--model", model,
                        "--n-features", "2**12", "--analyzer", "word", "--ngram-range", "1",
                        "1", "--n-epochs", "15", "--learning-rate", "0.1", "-q"], capsys)
    assert status == 0
    bundle = cli.load_model(model)
    from sklearn.pipeline import Pipeline

    assert isinstance(bundle["model"], Pipeline)
    hv = bundle["model"][0]
    assert hv.n_features == 2**12 and hv.analyzer == "word"
    assert list(bundle["label_names"]) == ["blue", "green", "red"]

    status, out, _ = run(["evaluate", "--model", model, "--test", tsv_files / "test.tsv",
                          "--k", "1", "-q"], capsys)
    assert status == 0 and "1 test label(s) unknown" in out
    assert _metrics(out)["P"][0] > 0.8

    status, out, _ = run(["predict", "--model", model, "--input", tsv_files / "raw.txt",
                          "--format", "text", "--k", "1", "-q"], capsys)
    assert status == 0
    assert [line.split(":")[0] for line in out.splitlines()] == ["red", "blue"]


def test_multiclass_auto_task(tmp_path, capsys):
    X, y = make_extreme_classification(300, 100, 12, random_state=1)
    Y = np.zeros((300, 12), dtype=np.float32)
    Y[np.arange(300), y] = 1
    dump_xc(tmp_path / "mc.txt", X, Y)
    model = tmp_path / "mc.joblib"
    status, _, _ = run(["fit", "--train", tmp_path / "mc.txt", "--model", model, *SMALL],
                       capsys)
    assert status == 0
    assert cli.load_model(model)["task"] == "multiclass"
    status, out, _ = run(["evaluate", "--model", model, "--test", tmp_path / "mc.txt",
                          "-q"], capsys)
    assert status == 0 and _metrics(out)["P"][0] > 0.5


def test_lsh_mlp_estimator(xc_files, tmp_path, capsys):
    pytest.importorskip("skmach.neural_network")
    model = tmp_path / "l.joblib"
    status, _, _ = run(["fit", "--train", xc_files / "train.txt", "--model", model,
                        "--estimator", "lsh-mlp", "--hidden-layer-size", "32",
                        "--active-budget", "0.25", "--n-epochs", "2", "-q"], capsys)
    assert status == 0
    status, out, _ = run(["evaluate", "--model", model, "--test", xc_files / "test.txt",
                          "-q"], capsys)
    assert status == 0 and "P" in _metrics(out)


@pytest.mark.parametrize("content, message", [
    ("3 4 2\n0 1:0.5\n1 x:1\n 2:1\n", "line 3"),
    ("not a header\n", "--format"),
    ("", "--format"),
])
def test_bad_training_file(tmp_path, capsys, content, message):
    bad = tmp_path / "bad.txt"
    bad.write_text(content)
    status, _, err = run(["fit", "--train", bad, "--model", tmp_path / "m.joblib", *SMALL],
                         capsys)
    assert status == 2
    assert "error" in err and message in err and "Traceback" not in err


def test_bad_tsv_and_model_files(tsv_files, xc_files, tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("text without a tab\n")
    status, _, err = run(["fit", "--train", bad, "--model", tmp_path / "m.joblib"], capsys)
    assert status == 2 and "line 1" in err

    status, _, err = run(["evaluate", "--model", tmp_path / "missing.joblib",
                          "--test", xc_files / "test.txt"], capsys)
    assert status == 2 and "no such file" in err

    garbage = tmp_path / "garbage.joblib"
    garbage.write_bytes(b"\x00not a pickle")
    status, _, err = run(["predict", "--model", garbage, "--input", xc_files / "test.txt"],
                         capsys)
    assert status == 2 and "not a model" in err

    joblib.dump({"something": 1}, tmp_path / "other.joblib")
    status, _, err = run(["predict", "--model", tmp_path / "other.joblib",
                          "--input", xc_files / "test.txt"], capsys)
    assert status == 2 and "not a model" in err


def test_format_mismatch(xc_files, tsv_files, tmp_path, capsys):
    model = tmp_path / "m.joblib"
    assert run(["fit", "--train", xc_files / "train.txt", "--model", model, *SMALL],
               capsys)[0] == 0
    status, _, err = run(["evaluate", "--model", model, "--test", tsv_files / "test.tsv",
                          "--format", "tsv"], capsys)
    assert status == 2 and "trained on xc" in err
    wide = tmp_path / "wide.txt"
    X, Y = make_extreme_classification(10, 500, 30, multilabel=True, random_state=0)
    dump_xc(wide, X, Y)
    status, _, err = run(["evaluate", "--model", model, "--test", wide], capsys)
    assert status == 2 and "500 features" in err


def test_progress_bars_are_tqdm_and_quiet_silences_them(xc_files, tmp_path, capsys):
    assert not hasattr(cli, "Progress")  # the hand-written bar is gone
    model = tmp_path / "m.joblib"
    args = ["fit", "--train", xc_files / "train.txt", "--model", model,
            *[a for a in SMALL if a != "-q"]]
    status, _, err = run(args, capsys)
    assert status == 0
    # tqdm's text bar: "fit: 100%|####| 4/4 [00:00<00:00, ...epochs/s, loss=0.1234]"
    assert "fit: 100%|" in err and "4/4" in err and "epochs/s" in err
    assert "loss=" in err
    assert "read train.txt: 100%|" in err
    status, _, err = run(args + ["-q"], capsys)
    assert status == 0 and "%|" not in err and err == ""


def test_truncated_and_foreign_model_files_name_the_file(xc_files, tmp_path, capsys):
    model = tmp_path / "good.joblib"
    assert run(["fit", "--train", xc_files / "train.txt", "--model", model, *SMALL],
               capsys)[0] == 0
    data = model.read_bytes()
    cut = tmp_path / "cut.joblib"
    cut.write_bytes(data[: len(data) // 2])
    foreign = tmp_path / "foreign.joblib"
    joblib.dump(np.arange(5), foreign)  # a valid joblib file, not a skmach model
    empty = tmp_path / "empty.joblib"
    empty.write_bytes(b"")
    for bad in (cut, foreign, empty):
        status, out, err = run(["predict", "--model", bad, "--input",
                                xc_files / "test.txt", "-q"], capsys)
        assert status == 2, bad.name
        assert str(bad) in err and "not a model saved by 'skmach fit'" in err, err
        assert "Traceback" not in err and out == ""
        with pytest.raises(cli.CLIError, match=bad.name):
            cli.load_model(bad)


def test_predict_uses_the_public_topk_through_the_saved_pipeline(tsv_files, tmp_path,
                                                                   capsys):
    import skmach

    model = tmp_path / "t.joblib"
    assert run(["fit", "--train", tsv_files / "train.tsv", "--model", model,
                "--n-features", "2**12", "--analyzer", "word", "--ngram-range", "1", "1",
                "--n-epochs", "5", "-q"], capsys)[0] == 0
    bundle = cli.load_model(model)
    texts = (tsv_files / "raw.txt").read_text().splitlines()
    status, out, _ = run(["predict", "--model", model, "--input", tsv_files / "raw.txt",
                          "--format", "text", "--k", "2", "-q"], capsys)
    assert status == 0
    labels, _ = skmach.predict_topk(bundle["model"], texts, 2)
    names = bundle["label_names"]
    got = [[p.rsplit(":", 1)[0] for p in line.split("\t")] for line in out.splitlines()]
    assert got == [[str(names[j]) for j in row] for row in labels]


def test_detect_format(tmp_path):
    (tmp_path / "a.txt").write_text("2 3 4\n0 1:1\n")
    (tmp_path / "b.txt").write_text("some text\tlab\n")
    (tmp_path / "c.tsv").write_text("2 3 4\n")
    assert cli.detect_format(tmp_path / "a.txt") == "xc"
    assert cli.detect_format(tmp_path / "b.txt") == "tsv"
    assert cli.detect_format(tmp_path / "c.tsv") == "tsv"


def test_python_m_skmach_help():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    res = subprocess.run([sys.executable, "-m", "skmach", "--help"], capture_output=True,
                         text=True, env=env, timeout=60)
    assert res.returncode == 0
    for cmd in ("demo", "fit", "predict", "evaluate"):
        assert cmd in res.stdout
    res = subprocess.run([sys.executable, "-m", "skmach", "fit"], capture_output=True,
                         text=True, env=env, timeout=60)
    assert res.returncode == 2 and "--train" in res.stderr


def test_predict_refuses_to_overwrite_its_input_or_model(xc_files, tmp_path, capsys):
    # opening --output truncates it: the same path as --input destroyed the data
    model = tmp_path / "m.joblib"
    assert run(["fit", "--train", xc_files / "train.txt", "--model", model, *SMALL],
               capsys)[0] == 0
    data = tmp_path / "data.txt"
    data.write_bytes((xc_files / "test.txt").read_bytes())
    before = data.read_bytes()
    for out in (data, model):
        status, _, err = run(["predict", "--model", model, "--input", data,
                              "--output", out, "-q"], capsys)
        assert status == 2 and "would overwrite the input file" in err, err
    assert data.read_bytes() == before and cli.load_model(model)["model"] is not None
    status, _, err = run(["fit", "--train", data, "--model", data, *SMALL], capsys)
    assert status == 2 and "would overwrite" in err and data.read_bytes() == before


def test_fit_checks_the_model_path_before_training(xc_files, tmp_path, capsys, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking the output path")

    monkeypatch.setattr(cli, "_train_epochs", no_training)
    for model, message in ((tmp_path / "missing" / "m.joblib", "does not exist"),
                           (tmp_path, "is a directory")):
        status, _, err = run(["fit", "--train", xc_files / "train.txt", "--model", model,
                              *SMALL], capsys)
        assert status == 2 and message in err, err


def test_one_line_errors_for_demo_huge_headers_and_incomplete_models(tmp_path, capsys):
    status, _, err = run(["demo", "--n-jobs", "0"], capsys)
    assert status == 2 and "'n_jobs' parameter" in err and "Traceback" not in err
    huge = tmp_path / "huge.txt"
    huge.write_text("1 4 100000000000000000000\n5 1:1\n")
    status, _, err = run(["fit", "--train", huge, "--model", tmp_path / "m.joblib", *SMALL],
                         capsys)
    assert status == 2 and "line 1: bad header: n_labels=" in err, err
    partial = tmp_path / "partial.joblib"
    joblib.dump({"skmach_model_format": 1}, partial)
    status, _, err = run(["predict", "--model", partial, "--input", huge, "-q"], capsys)
    assert status == 2 and "incomplete model file" in err, err
