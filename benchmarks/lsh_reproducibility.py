"""Does an LSH fit give the same model in two processes? (debian-paths)

Fits ``LSHSparseMLPClassifier`` with the settings of ``bench_lsh_debian.py``
(65,536-128-24,288, LSH output layer at 1%, 1 thread) on the first
``N_TRAIN`` training paths and prints an MD5 of each layer's weights and the
loss curve. With ``--warm-up`` the benchmarks' untimed warm-up fit runs first, which
changes the process's memory history but must not change the model. Run two
processes, one with and one without, and compare the lines::

    nice python benchmarks/lsh_reproducibility.py 1198250 2 --warm-up &
    nice python benchmarks/lsh_reproducibility.py 1198250 2

Before the active-set softmax was compiled without fastmath's reassociation
and no-inf assumptions the two differed after the full 2-epoch fit (final
loss 1.0445 against 1.0489); since, they agree.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import hashlib  # noqa: E402

from _common import DEFAULT_DATA, pin_threads  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n_train", type=int)
    ap.add_argument("epochs", type=int)
    ap.add_argument("--warm-up", action="store_true")
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    args = ap.parse_args()
    pin_threads(1)
    from bench_debian import load_debian
    from bench_lsh_debian import LEARNING_RATE, LSH_OUTPUT, N_TEST, N_TRAIN, network_params
    from bench_lsh_mlp import warm_up
    from skmach.neural_network import LSHSparseMLPClassifier

    Xtr, Ytr, _, _ = load_debian(args.data, N_TRAIN, N_TEST, 2**16, n_eval=1000)
    params = dict(network_params(args.epochs), learning_rate=LEARNING_RATE, **LSH_OUTPUT)
    if args.warm_up:
        warm_up(params, Xtr, Ytr, 1)
    clf = LSHSparseMLPClassifier(**params).fit(Xtr[:args.n_train], Ytr[:args.n_train])
    digests = [hashlib.md5(layer.P.tobytes()).hexdigest()[:16] for layer in clf._net.layers]
    print("warm-up" if args.warm_up else "fresh", *digests, clf.loss_curve_)


if __name__ == "__main__":
    main()
