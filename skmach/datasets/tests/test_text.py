import gzip
import lzma
from pathlib import Path

import numpy as np
import pytest
from sklearn.preprocessing import MultiLabelBinarizer

from skmach.datasets import iter_tsv, labels_to_indicator, load_tsv

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"

LINES = [
    ("usr/bin/ls", ["coreutils"]),
    ("usr/share/man/man1/ls.1.gz", ["coreutils", "manpages"]),
    ("etc/with space\tand tab", ["pkg-a"]),
    ("README", []),
    ("usr/lib/x", ["z", "a", "z"]),
]


def make_text(lines):
    return "".join(f"{t}\t{','.join(l)}\n" for t, l in lines)


@pytest.mark.parametrize("suffix, opener", [("", open), (".gz", gzip.open), (".xz", lzma.open)])
def test_load_tsv(tmp_path, suffix, opener):
    path = tmp_path / ("d.tsv" + suffix)
    with opener(path, "wt") as f:
        f.write(make_text(LINES))
    texts, labels = load_tsv(path)
    assert texts == [t for t, _ in LINES]  # the last TAB separates the labels
    assert labels == [l for _, l in LINES]


def test_iter_tsv_chunks(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text(make_text(LINES))
    chunks = list(iter_tsv(path, chunk_size=2))
    assert [len(t) for t, _ in chunks] == [2, 2, 1]
    assert sum((t for t, _ in chunks), []) == [t for t, _ in LINES]
    assert sum((l for _, l in chunks), []) == [l for _, l in LINES]
    with pytest.raises(ValueError, match="chunk_size"):
        iter_tsv(path, chunk_size=0)


@pytest.mark.parametrize(
    "text, lineno, what",
    [
        ("a\tx\nno tab here\nb\ty\n", 2, "no TAB"),
        ("a\tx\nb\ty\nc\tx,,y\n", 3, "empty label"),
    ],
)
def test_tsv_errors_name_the_line(tmp_path, text, lineno, what):
    path = tmp_path / "bad.tsv"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"line {lineno}: {what}"):
        load_tsv(path)
    with pytest.raises(ValueError, match=f"line {lineno}:"):
        list(iter_tsv(path, chunk_size=1))


@pytest.mark.parametrize("seed", range(5))
def test_labels_to_indicator_matches_multilabelbinarizer(seed):
    rng = np.random.RandomState(seed)
    vocab = [f"pkg{i}" for i in range(30)]
    labels = [
        list(rng.choice(vocab, size=rng.randint(0, 4))) for _ in range(50)
    ]
    Y, classes = labels_to_indicator(labels)
    mlb = MultiLabelBinarizer(sparse_output=True)
    expected = mlb.fit_transform(labels)
    assert list(classes) == list(mlb.classes_)
    assert classes.dtype == mlb.classes_.dtype
    np.testing.assert_array_equal(Y.toarray(), expected.toarray())
    assert Y.dtype == np.float32 and Y.format == "csr"


def test_labels_to_indicator_integer_and_given_classes():
    labels = [[3, 1], [], [1, 1, 7]]
    Y, classes = labels_to_indicator(labels)
    assert classes.dtype.kind == "i" and classes.tolist() == [1, 3, 7]
    np.testing.assert_array_equal(Y.toarray(), [[1, 1, 0], [0, 0, 0], [1, 0, 1]])

    with pytest.warns(UserWarning, match="unknown"):
        Y, classes = labels_to_indicator(labels, classes=[7, 3, 5])
    with pytest.warns(UserWarning):
        expected = MultiLabelBinarizer(classes=[7, 3, 5], sparse_output=True).fit_transform(labels)
    assert classes.tolist() == [7, 3, 5]
    np.testing.assert_array_equal(Y.toarray(), expected.toarray())


def test_labels_to_indicator_errors():
    with pytest.raises(TypeError, match="string"):
        labels_to_indicator(["abc", ["a"]])
    with pytest.raises(ValueError, match="duplicates"):
        labels_to_indicator([["a"]], classes=["a", "a"])
    with pytest.raises(TypeError, match="classes explicitly"):
        labels_to_indicator([["a"], [1]])


@pytest.mark.data
@pytest.mark.skipif(
    not (DATA / "debian-paths" / "test.tsv.xz").is_file(), reason="../shared/data is absent"
)
def test_real_debian_paths_first_chunk():
    texts, labels = next(iter_tsv(DATA / "debian-paths" / "test.tsv.xz", chunk_size=2000))
    assert len(texts) == len(labels) == 2000
    assert all(len(l) >= 1 for l in labels)
    assert all("\t" not in t for t in texts)
    Y, classes = labels_to_indicator(labels)
    assert Y.shape == (2000, len(classes))
    assert Y.nnz == sum(len(set(l)) for l in labels)
