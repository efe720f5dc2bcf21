"""Smoke test of an installed skmach wheel (``make wheel-test``, run by CI).

Run by the Python of a fresh virtual environment holding only the wheel and
its dependencies, from a directory outside the source tree: it checks that
the package imports from ``site-packages``, fits, predicts, saves and loads
both estimators, and that the ``skmach`` command works. Not collected by
pytest (no ``test_`` prefix; everything runs under ``__main__``).
"""

import os
import subprocess
import sys
import tempfile


def main(source_tree):
    import joblib
    import numpy as np
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MaxAbsScaler

    import skmach
    from skmach import LSHSparseMLPClassifier, MACHClassifier
    from skmach.datasets import dump_xc, load_demo, make_extreme_classification

    where = os.path.realpath(skmach.__file__)
    assert "site-packages" in where, where
    package_dir = os.path.join(os.path.realpath(source_tree), "skmach") + os.sep
    assert not where.startswith(package_dir), (
        f"skmach was imported from the source tree ({where}), not from the wheel")
    print(f"skmach {skmach.__version__} from {os.path.dirname(where)}")

    X_train, X_test, y_train, y_test = load_demo()
    pipe = make_pipeline(MaxAbsScaler(), MACHClassifier(
        n_buckets=16, n_repetitions=4, n_epochs=3, n_jobs=2, random_state=0))
    pipe.fit(X_train, y_train)
    labels, scores = skmach.predict_topk(pipe, X_test, k=5)
    p1 = float(np.mean(labels[:, 0] == y_test))
    assert labels.shape == (X_test.shape[0], 5) and p1 > 0.2, p1
    lsh = LSHSparseMLPClassifier(hidden_layer_sizes=(32,), n_epochs=2, random_state=0)
    lsh.fit(X_train[:1000], y_train[:1000])

    with tempfile.TemporaryDirectory() as tmp:
        for name, model in (("pipe", pipe), ("lsh", lsh)):
            path = os.path.join(tmp, f"{name}.joblib")
            joblib.dump(model, path)
            again = joblib.load(path)
            np.testing.assert_array_equal(skmach.predict_topk(again, X_test, 3)[0],
                                          skmach.predict_topk(model, X_test, 3)[0])
        # the console script installed by the wheel
        X, Y = make_extreme_classification(300, 100, 20, multilabel=True, random_state=0)
        data = os.path.join(tmp, "train.txt")
        dump_xc(data, X, Y)
        model = os.path.join(tmp, "m.joblib")
        exe = os.path.join(os.path.dirname(sys.executable), "skmach")
        subprocess.run([exe, "fit", "--train", data, "--model", model, "--n-epochs", "2",
                        "-q"], check=True, timeout=300)
        out = subprocess.run([exe, "predict", "--model", model, "--input", data, "--k", "2",
                              "-q"], check=True, capture_output=True, text=True, timeout=300)
        assert len(out.stdout.splitlines()) == 300
    print(f"wheel smoke test passed: P@1 {p1:.3f} on the demo data; "
          "fit, predict, save, load and the skmach command work")


if __name__ == "__main__":
    main(sys.argv[1])
