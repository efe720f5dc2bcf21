"""Diagnostic: is the P@1 gap of the LSH output layer on debian-paths a
matter of *which* outputs are active (retrieval), or of training only a
sample of them at all?

The network and split are those the debian settings were chosen on
(``bench_lsh_debian.py --validate 20000 --n-train 400000 --epochs 1``:
65,536-128-24,288, first 400,000 training paths, scored on the last 20,000,
1 epoch, batch 128, learning rate 5e-3, 1 thread). Only the choice of the
output layer's active set differs (the budget stays 1% = 242 outputs,
the true labels always in it):

- ``dense``: every output (the dense reference);
- ``lsh``: the estimator as it is (DWTA L=50 K=4 tables, ``selection="sample"``,
  uniform importance-weighted padding up to the budget);
- ``exact-top``: the 242 largest logits (computed densely: an oracle that
  costs a dense forward), no padding;
- ``exact-top150+pad``: the 150 largest logits (about what the tables
  retrieve) and 92 uniform importance-weighted padding outputs, as ``lsh``
  pads;
- ``lsh3x-rerank150+pad``: 726 candidates from DWTA L=50 K=3 tables (the
  most collisions), the 150 of them with the largest exact logits, then the
  same padding (a re-ranking of the LSH candidates, costed at exact scores);
- ``label-nn150+pad``: the 150 outputs whose weight vectors have the largest
  inner product with the (first) true label's, recomputed every 200
  batches, then the same padding (negatives that depend on the label, not
  on the input: the labels a path is confused with).

The oracles replace ``SparseNetwork._select`` for the output layer in this
process only (a diagnostic, not an estimator option). Usage::

    nice python benchmarks/lsh_retrieval_oracle.py [--variants ...]

Writes ``results/lsh_retrieval_oracle.{json,md}``.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from _common import (DEFAULT_DATA, command_line, machine, markdown_table,  # noqa: E402
                     pin_threads, write_results)

VARIANTS = ["dense", "lsh", "exact-top", "exact-top150+pad", "lsh3x-rerank150+pad",
            "label-nn150+pad"]
N_TRAIN, N_VALID = 400_000, 20_000


def _active_sets(layer, lab_ptr, lab, chosen, n_keep, rng):
    """Labels, then ``chosen[i]`` (ranked candidates, best first, labels
    excluded) up to ``n_keep`` selected, then uniform padding up to the
    budget: the ragged ``(s, e, ind, fmask, examined, pad_start)`` of
    ``SparseNetwork._select``."""
    n, B = len(lab_ptr) - 1, layer.budget
    w = B + int(np.max(np.diff(lab_ptr)))
    idx = np.zeros((n, w), dtype=np.int64)
    fm = np.zeros((n, w), dtype=bool)
    cnt = np.zeros(n, dtype=np.int64)
    n_sel = np.zeros(n, dtype=np.int64)
    for i in range(n):
        li = lab[lab_ptr[i]:lab_ptr[i + 1]]
        ci = chosen[i][~np.isin(chosen[i], li)][:max(n_keep - len(li), 0)]
        sel = np.concatenate([li, ci])
        c = len(sel)
        idx[i, :c], fm[i, :len(li)], n_sel[i] = sel, True, c
        n_pad = max(B - c, 0)
        if n_pad:
            free = np.ones(layer.n_out, dtype=bool)
            free[sel] = False
            idx[i, c:c + n_pad] = rng.choice(np.flatnonzero(free), n_pad, replace=False)
        cnt[i] = c + n_pad
    s = np.arange(n, dtype=np.int64) * w
    return s, s + cnt, idx.ravel(), fm.ravel(), np.zeros(n, dtype=np.int64), s + n_sel


def install_oracle(variant, seed=0):
    """Replace the output layer's selection of ``SparseNetwork`` by ``variant``."""
    from skmach.neural_network import _base

    orig = _base.SparseNetwork._select
    rng = np.random.default_rng(seed)

    def select(self, layer, act, train, forced, seeds, rows=None):
        if not train or layer is not self.layers[-1]:
            return orig(self, layer, act, train, forced, seeds, rows)
        H = act[1]
        lab_ptr, lab = forced
        if variant.startswith("exact-top"):
            Z = H @ layer.P.T + layer.b
            k = layer.budget if variant == "exact-top" else 150
            top = np.argpartition(-Z, k + 3, axis=1)[:, :k + 3]  # + room for labels
            order = np.argsort(-np.take_along_axis(Z, top, 1), axis=1)
            chosen = np.take_along_axis(top, order, 1)
            return _active_sets(layer, lab_ptr, lab, chosen, k, rng)
        if variant == "label-nn150+pad":
            nn = self.__dict__.get("_oracle_nn")
            if nn is None or self.n_batches % 200 == 0 and self._oracle_at != self.n_batches:
                P = layer.P
                nn = np.empty((P.shape[0], 151), dtype=np.int64)
                for a in range(0, P.shape[0], 2048):
                    G = P[a:a + 2048] @ P.T
                    top = np.argpartition(-G, 151, axis=1)[:, :151]
                    order = np.argsort(-np.take_along_axis(G, top, 1), axis=1)
                    nn[a:a + 2048] = np.take_along_axis(top, order, 1)
                self._oracle_nn, self._oracle_at = nn, self.n_batches
            chosen = [nn[lab[lab_ptr[i]]] if lab_ptr[i + 1] > lab_ptr[i]
                      else np.zeros(0, dtype=np.int64) for i in range(len(lab_ptr) - 1)]
            return _active_sets(layer, lab_ptr, lab, chosen, 150, rng)
        # lsh3x-rerank150+pad: the tables' 3 x budget best, exact logits
        n = H.shape[0]
        n_cand = 3 * layer.budget
        qb = self._codes(layer, act)
        idx = np.zeros((n, n_cand), dtype=np.int64)
        cnt = np.zeros(n, dtype=np.int64)
        z = [np.zeros(n, dtype=np.int64) for _ in range(3)]
        fm = np.zeros((n, n_cand), dtype=np.bool_)
        no = np.zeros(n + 1, dtype=np.int64)
        _base.KT.query_select(layer.ptr, layer.ids, qb, layer.n_buckets, layer.n_out, n_cand,
                              0, no, no[:0], no[:-1], _base.KT.SEL_TOPK, 0, False, seeds,
                              layer.pad_perm, 1, idx, cnt, fm, *z)
        Zc = np.einsum("ijk,ik->ij", layer.P[idx], H) + layer.b[idx]
        Zc[np.arange(n_cand)[None, :] >= cnt[:, None]] = -np.inf
        order = np.argsort(-Zc, axis=1)
        chosen = [idx[i, order[i, :cnt[i]]] for i in range(n)]
        return _active_sets(layer, lab_ptr, lab, chosen, 150, rng)

    _base.SparseNetwork._select = select
    return orig


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    ap.add_argument("--n-train", type=int, default=N_TRAIN, help="(smaller: a smoke test)")
    args = ap.parse_args()
    pin_threads(1)
    from bench_debian import load_debian
    from bench_lsh_debian import LEARNING_RATE, LSH_OUTPUT, N_TEST, network_params
    from bench_lsh_debian import N_TRAIN as N_ALL
    from bench_lsh_mlp import run_ours

    from skmach.neural_network import _base

    Xtr, Ytr, _, _ = load_debian(args.data, N_ALL, N_TEST, 2**16, n_eval=1000)
    Xv, Yv = Xtr[-N_VALID:], Ytr[-N_VALID:]
    X, Y = Xtr[:args.n_train], Ytr[:args.n_train]
    del Xtr, Ytr
    base = dict(network_params(1), learning_rate=LEARNING_RATE)
    rows = []
    for v in args.variants:
        if v == "dense":
            params = dict(base, lsh_layers="none")
        else:
            # the settings of the recorded run (50 tables, every active
            # output updated), not the later ones of bench_lsh_debian.py
            params = dict(base, **{**LSH_OUTPUT, "n_tables": 50, "gradient_threshold": 0.0})
            if v == "lsh3x-rerank150+pad":
                params["n_bits"] = 3
        orig = None if v in ("dense", "lsh") else install_oracle(v)
        t0 = time.perf_counter()
        try:
            r = run_ours(v, params, X, Y, Xv, Yv, multilabel=True, threads=1)
        finally:
            if orig is not None:
                _base.SparseNetwork._select = orig
        r["run_s"] = time.perf_counter() - t0
        rows.append(r)
    cols = [("model", None), ("P@1", "{:.4f}"), ("P@3", "{:.4f}"), ("P@5", "{:.4f}"),
            ("final_loss", "{:.3f}"), ("cpu_s_per_epoch", "{:.1f}")]
    md = (f"# Which outputs are active: LSH retrieval against exact-logit oracles "
          f"(debian-paths, issue 12)\n\nCommand: `nice {command_line()}`\n\n"
          f"Machine: {machine()}\n\n"
          f"Network 65,536-128-24,288; first {args.n_train:,} training paths, scored (full "
          f"scoring of every output) on the last {N_VALID:,}; 1 epoch, batch 128, learning "
          f"rate {LEARNING_RATE}, seed 0, 1 thread. Output budget 1% (242), true labels "
          f"always active. The exact-logit variants compute every logit to choose "
          f"(oracles: their time is not a candidate's time).\n\n"
          + markdown_table(rows, cols))
    name = "lsh_retrieval_oracle" + ("" if args.n_train == N_TRAIN else "_smoke")
    write_results(name, {"command": command_line(), "machine": machine(), "rows": rows}, md)


if __name__ == "__main__":
    main()
