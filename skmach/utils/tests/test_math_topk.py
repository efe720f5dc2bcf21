"""Edge cases of the shared helpers (found by a malformed-input review)."""

import numpy as np
import pytest
import scipy.sparse as sp

from skmach.utils import log_softmax, sigmoid, softmax, topk


@pytest.mark.parametrize("row, expected", [
    (np.array([0, 1, 2], np.uint8), [2, 1, 0]),        # -uint8 wraps: 0 ranked first
    (np.array([7, 0, 3], np.uint16), [0, 2, 1]),
    (np.array([-128, 5, 0], np.int8), [1, 2, 0]),      # -(-128) is -128 in int8
    (np.array([np.iinfo(np.int64).min, 3, -1]), [1, 2, 0]),
    (np.array([False, True, True]), [1, 2, 0]),
])
def test_topk_orders_integer_and_bool_scores_exactly(row, expected):
    idx, val = topk(row[None, :], 3)
    assert idx.tolist() == [expected]
    assert val.dtype == row.dtype and val.tolist() == [row[expected].tolist()]


def test_topk_refuses_bad_k_nan_and_sparse_by_name():
    for k in (2.7, "2", True, None):
        with pytest.raises(TypeError, match="k must be an integer"):
            topk(np.ones((1, 3)), k)
    assert topk(np.ones((1, 3)), np.int64(2))[0].shape == (1, 2)
    with pytest.raises(ValueError, match="NaN"):
        topk(np.array([[0.1, np.nan]]), 1)
    with pytest.raises(TypeError, match="sparse"):
        topk(sp.csr_matrix(np.eye(3)), 1)


def test_sigmoid_and_softmax_of_integers_are_those_of_their_values():
    for dtype in (np.uint8, np.int8, np.int64, np.bool_):
        z = np.array([0, 1, 5, 100] if dtype != np.bool_ else [0, 1, 1, 0], dtype=dtype)
        f = z.astype(np.float64)
        np.testing.assert_allclose(sigmoid(z), sigmoid(f))
        np.testing.assert_allclose(softmax(z[None, :]), softmax(f[None, :]))
        np.testing.assert_allclose(log_softmax(z[None, :]), log_softmax(f[None, :]))


def test_log_softmax_follows_softmax_on_infinite_rows():
    z = np.array([[np.inf, 0.0, np.inf], [-np.inf, -np.inf, -np.inf], [1.0, 2.0, -np.inf]])
    with np.errstate(divide="ignore"):
        expected = np.log(softmax(z))
    np.testing.assert_allclose(log_softmax(z), expected)
    assert not np.isnan(log_softmax(z)).any()
