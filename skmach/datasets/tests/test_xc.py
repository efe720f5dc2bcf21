import bz2
import gzip
import lzma
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skmach.datasets import dump_xc, iter_xc, load_xc

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


def reference_parse(text):
    """Plain line-by-line parser of the XC format (no validation)."""
    lines = text.split("\n")
    n, nf, nl = map(int, lines[0].split())
    X = np.zeros((n, nf))
    Y = np.zeros((n, nl))
    for i in range(n):
        tokens = lines[i + 1].split()
        if tokens and ":" not in tokens[0]:
            for lab in tokens[0].split(","):
                Y[i, int(lab)] = 1
            tokens = tokens[1:]
        for tok in tokens:
            j, v = tok.split(":")
            X[i, int(j)] = float(v)
    return X, Y


def write(tmp_path, text, name="data.txt"):
    path = tmp_path / name
    path.write_text(text)
    return path


TOY = "4 5 3\n0,2 1:0.5 4:2\n 0:1.5\n1\n\n"


def test_load_toy_matches_reference(tmp_path):
    X, Y = load_xc(write(tmp_path, TOY))
    X_ref, Y_ref = reference_parse(TOY)
    assert sp.isspmatrix_csr(X) and sp.isspmatrix_csr(Y)
    assert X.dtype == np.float32 and Y.dtype == np.float32
    np.testing.assert_array_equal(X.toarray(), X_ref)
    np.testing.assert_array_equal(Y.toarray(), Y_ref)
    X64, _ = load_xc(write(tmp_path, TOY), dtype=np.float64)
    assert X64.dtype == np.float64


def test_features_only_line_and_tabs(tmp_path):
    text = "2 4 2\n3:1\t0:2\n1\t2:1\n"
    X, Y = load_xc(write(tmp_path, text))
    np.testing.assert_array_equal(X.toarray(), [[2, 0, 0, 1], [0, 0, 1, 0]])
    np.testing.assert_array_equal(Y.toarray(), [[0, 0], [0, 1]])


def test_widths_can_be_widened(tmp_path):
    X, Y = load_xc(write(tmp_path, TOY), n_features=10, n_labels=7)
    assert X.shape == (4, 10) and Y.shape == (4, 7)
    with pytest.raises(ValueError, match="smaller than"):
        load_xc(write(tmp_path, TOY), n_features=2)


def test_zero_points(tmp_path):
    X, Y = load_xc(write(tmp_path, "0 7 3\n"))
    assert X.shape == (0, 7) and Y.shape == (0, 3)


def test_trailing_blank_lines_are_ignored(tmp_path):
    X, _ = load_xc(write(tmp_path, "1 2 1\n0 1:1\n\n\n"))
    assert X.shape == (1, 2)


@st.composite
def sparse_problems(draw):
    n = draw(st.integers(0, 12))
    nf = draw(st.integers(1, 15))
    nl = draw(st.integers(1, 10))
    dens_x = draw(st.floats(0, 1))
    dens_y = draw(st.floats(0, 1))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.RandomState(seed)
    X = sp.random(n, nf, density=dens_x, format="csr", random_state=rng, dtype=np.float64)
    # float32 values of very different magnitudes and signs
    X.data = (rng.standard_normal(X.nnz) * 10.0 ** rng.randint(-30, 30, X.nnz)).astype(
        np.float32
    )
    X = X.astype(np.float32)
    Y = (sp.random(n, nl, density=dens_y, format="csr", random_state=rng) > 0).astype(
        np.float32
    )
    return X, Y


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sparse_problems(), st.sampled_from([".txt", ".gz"]), st.booleans())
def test_dump_load_round_trip(tmp_path, problem, suffix, dense):
    X, Y = problem
    path = tmp_path / ("rt" + suffix)
    dump_xc(path, X.toarray() if dense else X, Y.toarray() if dense else Y)
    X2, Y2 = load_xc(path)
    assert X2.shape == X.shape and Y2.shape == Y.shape
    # Exact float32 round trip (not approximate).
    np.testing.assert_array_equal(X2.toarray(), X.toarray())
    np.testing.assert_array_equal(Y2.toarray(), Y.toarray())
    # The written text agrees with the plain reference parser.
    opener = gzip.open if suffix == ".gz" else open
    with opener(path, "rt") as f:
        X_ref, Y_ref = reference_parse(f.read())
    np.testing.assert_array_equal(X_ref.astype(np.float32), X.toarray())
    np.testing.assert_array_equal(Y_ref, Y.toarray())
    # iter_xc blocks concatenate to the whole file.
    blocks = list(iter_xc(path, chunk_size=5))
    assert all(b[0].shape[1] == X.shape[1] and b[1].shape[1] == Y.shape[1] for b in blocks)
    assert sum(b[0].shape[0] for b in blocks) == X.shape[0]
    if blocks:
        np.testing.assert_array_equal(sp.vstack([b[0] for b in blocks]).toarray(), X.toarray())
        np.testing.assert_array_equal(sp.vstack([b[1] for b in blocks]).toarray(), Y.toarray())


def test_dump_writes_unsigned_integers_above_2_63(tmp_path):
    # an int64 cast wrapped them: 2**63 + 5 was written as -9223372036854775803
    X = np.array([[2**63 + 5, 0, 3], [np.iinfo(np.uint64).max, 1, 0]], np.uint64)
    dump_xc(tmp_path / "u.txt", X, np.array([[0, 1], [1, 0]]))
    lines = (tmp_path / "u.txt").read_text().splitlines()
    assert lines[1:] == [f"1 0:{2**63 + 5} 2:3", f"0 0:{2**64 - 1} 1:1"]


def test_float64_round_trip_is_exact(tmp_path):
    rng = np.random.RandomState(0)
    X = rng.standard_normal((5, 4))
    Y = np.eye(5, 3)
    dump_xc(tmp_path / "d.txt", X, Y)
    X2, _ = load_xc(tmp_path / "d.txt", dtype=np.float64)
    np.testing.assert_array_equal(X2.toarray(), X)


@pytest.mark.parametrize("suffix, opener", [(".gz", gzip.open), (".bz2", bz2.open), (".xz", lzma.open)])
def test_compressed_files_are_transparent(tmp_path, suffix, opener):
    path = tmp_path / ("c.txt" + suffix)
    with opener(path, "wt") as f:
        f.write(TOY)
    X, Y = load_xc(path)
    X_ref, Y_ref = reference_parse(TOY)
    np.testing.assert_array_equal(X.toarray(), X_ref)
    np.testing.assert_array_equal(Y.toarray(), Y_ref)


def test_iter_xc_chunks_concatenate_to_load_xc(tmp_path):
    rng = np.random.RandomState(1)
    X = sp.random(103, 40, density=0.1, format="csr", random_state=rng, dtype=np.float32)
    Y = (sp.random(103, 17, density=0.1, format="csr", random_state=rng) > 0).astype(np.float32)
    path = tmp_path / "big.txt.gz"
    dump_xc(path, X, Y)
    X_all, Y_all = load_xc(path)
    for chunk_size in (1, 10, 103, 500):
        blocks = list(iter_xc(path, chunk_size=chunk_size))
        assert [b[0].shape[0] for b in blocks][:-1] == [chunk_size] * (len(blocks) - 1)
        assert all(sp.isspmatrix_csr(b[0]) and b[0].shape[1] == 40 for b in blocks)
        assert all(b[1].shape[1] == 17 for b in blocks)
        assert (sp.vstack([b[0] for b in blocks]) != X_all).nnz == 0
        assert (sp.vstack([b[1] for b in blocks]) != Y_all).nnz == 0


def test_iter_xc_is_lazy(tmp_path):
    # The error is on line 5 (4th data line): the first block comes out before.
    path = write(tmp_path, "4 3 2\n0 0:1\n1 1:1\n0 2:1\nX 0:1\n")
    it = iter_xc(path, chunk_size=2)
    X, _ = next(it)
    assert X.shape == (2, 3)
    with pytest.raises(ValueError, match="line 5"):
        next(it)


MALFORMED = [
    ("", 1, "empty"),
    ("\n", 1, "empty"),
    ("3 4\n0 1:1\n", 1, "header"),
    ("a b c\n", 1, "header"),
    ("2 4 -3\n", 1, "header"),
    ("3 4 2\n0 1:1\n1 2:1\n", 4, "end of file"),
    ("1 4 2\n0 1:1\n1 2:1\n", 3, "more data lines"),
    ("2 4 2\n0 1:1\nx 2:1\n", 3, "label 'x'"),
    ("2 4 2\n0 1:1\n1.5 2:1\n", 3, "label"),
    ("2 4 2\n0 1:1\n-1 2:1\n", 3, "label"),
    ("2 4 2\n0 1:1\n1,,0 2:1\n", 3, "label"),
    ("2 4 2\n0 1:1\n1, 2:1\n", 3, "label"),
    ("2 4 2\n0 1:1\n1 2\n", 3, "index:value"),
    ("2 4 2\n0 1:1\n1 2:1 3\n", 3, "index:value"),
    ("2 4 2\n0 1:1\n1 2:1:3 0\n", 3, "index:value"),
    ("2 4 2\n0 1:1\n1 2: 3:1\n", 3, "feature value"),
    ("2 4 2\n0 1:1\n1 :2\n", 3, "feature index"),
    ("2 4 2\n0 1:1\n1 a:2\n", 3, "feature index"),
    ("2 4 2\n0 1:1\n1 1.5:2\n", 3, "feature index"),
    ("2 4 2\n0 1:1\n1 2:abc\n", 3, "not a number"),
    ("2 4 2\n0 4:1\n1 2:1\n", 2, "out of range"),
    ("2 4 2\n0 1:1\n2 2:1\n", 3, "out of range"),
    ("2 4 2\n0 1:nan\n1 2:1\n", 2, "not finite"),
    ("2 4 2\n0 1:1\n1 2:-inf\n", 3, "not finite"),
    ("2 4 2\n0 1:1e300\n1 2:1\n", 2, "overflows"),
    ("2 4 2\n0 1:1 1:2\n1 2:1\n", 2, "duplicate feature"),
    ("2 4 2\n0 1:1\n1,1 2:1\n", 3, "duplicate label"),
]


@pytest.mark.parametrize("text, lineno, what", MALFORMED)
@pytest.mark.parametrize("suffix", [".txt", ".gz"])
def test_malformed_input_names_file_and_line(tmp_path, text, lineno, what, suffix):
    path = tmp_path / ("bad" + suffix)
    if suffix == ".gz":
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    with pytest.raises(ValueError) as exc:
        load_xc(path)
    msg = str(exc.value)
    assert f"line {lineno}:" in msg, msg
    assert str(path) in msg
    assert what in msg, msg


def test_errors_in_a_later_block_report_the_absolute_line(tmp_path):
    lines = ["0 1:1"] * 250 + ["0 9:1"] + ["0 1:1"] * 10
    path = write(tmp_path, f"{len(lines)} 4 1\n" + "\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=re.escape("line 252:")):
        list(iter_xc(path, chunk_size=100))
    with pytest.raises(ValueError, match=re.escape("line 252:")):
        load_xc(path)


def test_argument_validation(tmp_path):
    path = write(tmp_path, TOY)
    with pytest.raises(ValueError, match="chunk_size"):
        iter_xc(path, chunk_size=0)
    with pytest.raises(TypeError, match="dtype"):
        load_xc(path, dtype=np.int32)
    with pytest.raises(TypeError, match="path"):
        load_xc(123)
    with pytest.raises(ValueError, match="different numbers of samples"):
        dump_xc(tmp_path / "o.txt", np.ones((2, 2)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="binary"):
        dump_xc(tmp_path / "o.txt", np.ones((2, 2)), 2 * np.ones((2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        dump_xc(tmp_path / "o.txt", np.full((2, 2), np.nan), np.ones((2, 2)))


@pytest.mark.data
@pytest.mark.skipif(not (DATA / "bibtex").is_dir(), reason="../shared/data is absent")
def test_real_bibtex_file():
    X, Y = load_xc(DATA / "bibtex" / "bibtex_train.txt")
    assert X.shape == (4880, 1836)
    assert Y.shape == (4880, 159)
    assert X.nnz > 0 and Y.nnz >= 4880 * 0.9
    # Compare the first rows against the plain reference parser.
    with open(DATA / "bibtex" / "bibtex_train.txt") as f:
        head = [next(f) for _ in range(51)]
    head[0] = "50 1836 159\n"
    X_ref, Y_ref = reference_parse("".join(head))
    np.testing.assert_array_equal(X[:50].toarray(), X_ref)
    np.testing.assert_array_equal(Y[:50].toarray(), Y_ref)


@pytest.mark.parametrize("integer", [False, True])
def test_dump_writes_blocks_of_rows_like_one_block(tmp_path, monkeypatch, integer):
    from skmach.datasets import _xc

    rng = np.random.RandomState(0)
    X = sp.random(11, 7, density=0.4, format="csr", random_state=rng, dtype=np.float32)
    X[4] = 0  # a row without features
    X.eliminate_zeros()
    if integer:
        X = (X * 10).astype(np.int64)
    Y = (sp.random(11, 5, density=0.3, format="csr", random_state=rng) > 0).astype(np.float32)
    dump_xc(tmp_path / "one.txt", X, Y)
    monkeypatch.setattr(_xc, "_DUMP_BLOCK_ROWS", 3)
    dump_xc(tmp_path / "blocks.txt", X, Y)
    assert (tmp_path / "blocks.txt").read_bytes() == (tmp_path / "one.txt").read_bytes()
    X2, Y2 = load_xc(tmp_path / "blocks.txt")
    np.testing.assert_array_equal(X2.toarray(), X.toarray())
    np.testing.assert_array_equal(Y2.toarray(), Y.toarray())
