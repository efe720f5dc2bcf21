"""GPU benchmark: MACH bucket scoring, MACHClassifier and LSHSparseMLPClassifier.

Writes ``benchmarks/results/<prefix>.json`` and ``.md`` (default prefix
``gpu_bench``) with the exact command line and the ``nvidia-smi`` device name.

(a) Bucket scoring fused with top-k (``skmach._gpu.topk_classes_gpu``):
    class scores per second, and bytes moved against the memory-bandwidth
    roofline (memoryClockRate x busWidth x 2 / 8 from the device properties).
    The CPU reference (``skmach.mach._scoring.topk_classes``) runs on a few
    samples of the same problem for a per-sample speed ratio.
(b) MACHClassifier fit + predict_topk on debian-paths (a subset), inside a
    Pipeline with a char n-gram HashingVectorizer, device='cuda' vs 'cpu'.
(c) LSHSparseMLPClassifier on MNIST, device='cuda' vs 'cpu'.

(b) and (c) print ``skipped: <reason>`` while the estimator does not use
``skmach._gpu`` yet or refuses ``device='cuda'``. Defaults take a few minutes
on an H100.

Example::

    python benchmarks/bench_gpu.py --n-samples 2048 --n-classes 1000000 \
        --debian-n 20000 --mnist-n 10000
"""

import argparse
import gzip
import inspect
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _common import RESULTS  # noqa: E402  (honours SKMACH_BENCH_RESULTS)
DATA = ROOT / ".." / "shared" / "data"


def device_info():
    info = {}
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
        info["nvidia_smi"] = out.stdout.strip() or out.stderr.strip()
    except Exception as exc:  # noqa: BLE001
        info["nvidia_smi"] = f"unavailable: {exc}"
    try:
        import cupy

        dev = cupy.cuda.Device().id
        props = cupy.cuda.runtime.getDeviceProperties(dev)
        name = props.get("name", b"")
        info["name"] = name.decode() if isinstance(name, bytes) else str(name)
        clock_khz = props.get("memoryClockRate") or cupy.cuda.runtime.deviceGetAttribute(36, dev)
        bus_bits = props.get("memoryBusWidth") or cupy.cuda.runtime.deviceGetAttribute(37, dev)
        info["memory_clock_khz"], info["bus_width_bits"] = int(clock_khz), int(bus_bits)
        # DDR: two transfers per clock; bits -> bytes.
        info["bandwidth_GBps"] = clock_khz * 1e3 * bus_bits * 2 / 8 / 1e9
        info["sm_count"] = int(props.get("multiProcessorCount", 0))
        info["cupy"] = cupy.__version__
    except Exception as exc:  # noqa: BLE001
        info["cupy_error"] = f"{type(exc).__name__}: {exc}"
    return info


def _sync():
    import cupy

    cupy.cuda.Stream.null.synchronize()


def _time_gpu(f, repeat):
    f()  # warm-up (compilation)
    _sync()
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        _sync()
        best = min(best, time.perf_counter() - t)
    return best


def bench_scoring(args, bw_gbps, on_case=None):
    import cupy

    from skmach._gpu import hash_arguments, topk_classes_gpu
    from skmach._hashing import UniversalHashFamily
    from skmach.mach._scoring import topk_classes

    n, K, R, B, k = args.n_samples, args.n_classes, args.n_repetitions, args.n_buckets, args.k
    rng = np.random.default_rng(0)
    h = UniversalHashFamily(K, B, R, rng, distinct=False)
    P = rng.dirichlet(np.ones(B), size=(n, R)).astype(np.float32)
    Pg = cupy.asarray(P)
    hargs = hash_arguments(h)
    rows = []
    for agg in args.aggregations:
        t = _time_gpu(lambda: topk_classes_gpu(Pg, n_classes=K, k=k, aggregation=agg,
                                               hash_args=hargs), args.repeat)
        scores = n * K
        dram_bytes = P.nbytes + n * k * 12  # P read once, (index, score) written
        gather_bytes = scores * R * 4  # bucket probabilities read by the kernel (L1/L2)
        m = min(n, args.cpu_samples)
        t0 = time.perf_counter()
        ref = topk_classes(P[:m], h, K, k, agg)
        t_cpu = time.perf_counter() - t0
        got = topk_classes_gpu(Pg[:m], n_classes=K, k=k, aggregation=agg, hash_args=hargs)
        same = bool((cupy.asnumpy(got[0]) == ref[0]).all())
        rows.append({
            "aggregation": agg, "n": n, "K": K, "R": R, "B": B, "k": k,
            "gpu_s": t, "class_scores_per_s": scores / t,
            "dram_bytes": dram_bytes, "dram_GBps": dram_bytes / t / 1e9,
            "gather_bytes": gather_bytes, "gather_GBps": gather_bytes / t / 1e9,
            "gather_vs_dram_roofline": (gather_bytes / t / 1e9) / bw_gbps if bw_gbps else None,
            "roofline_min_s": dram_bytes / (bw_gbps * 1e9) if bw_gbps else None,
            "cpu_samples": m, "cpu_s": t_cpu,
            "speedup_per_sample": (t_cpu / m) / (t / n),
            "same_topk_as_cpu": same,
        })
        bw = f"{bw_gbps:.0f} GB/s" if bw_gbps else "unknown"
        print(f"[scoring] {agg}: {scores / t:.3e} class scores/s, gather {gather_bytes / t / 1e9:.0f} GB/s"
              f" (DRAM roofline {bw}), x{rows[-1]['speedup_per_sample']:.1f} vs CPU,"
              f" same top-k: {same}", flush=True)
        if on_case is not None:
            on_case(rows)
    return rows


def _uses_gpu_module(module):
    """Whether an estimator module imports skmach._gpu (device='cuda' is wired).

    Looks at the module's imports, not its text (a docstring may name _gpu).
    """
    import ast

    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError, SyntaxError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and "_gpu" in node.module:
            return True
        if isinstance(node, ast.Import) and any("_gpu" in a.name for a in node.names):
            return True
    return False


def _load_debian(n):
    from skmach.datasets._text import iter_tsv

    texts, labels = [], []
    for t, l in iter_tsv(DATA / "debian-paths" / "train.tsv.xz", chunk_size=min(n, 100_000)):
        texts.extend(t)
        labels.extend(x[0] for x in l)
        if len(texts) >= n:
            break
    return texts[:n], np.array(labels[:n], dtype=object)


def bench_mach(args):
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.pipeline import make_pipeline

    import skmach.mach._mach as mach_mod
    from skmach.mach import MACHClassifier

    if not _uses_gpu_module(mach_mod):
        return {"skipped": "device='cuda' is not wired into MACHClassifier yet "
                           "(skmach/mach/_mach.py does not use skmach._gpu)"}
    texts, y = _load_debian(args.debian_n)
    n_test = max(1, len(texts) // 10)
    out = {"n_train": len(texts) - n_test, "n_test": n_test, "n_classes": len(set(y))}
    for device in ("cpu", "cuda"):
        pipe = make_pipeline(
            HashingVectorizer(analyzer="char_wb", ngram_range=(2, 4), n_features=2**18,
                              alternate_sign=False, dtype=np.float32),
            MACHClassifier(n_buckets=args.mach_buckets, n_repetitions=args.n_repetitions,
                           n_epochs=args.mach_epochs, random_state=0, device=device))
        try:
            t = time.perf_counter()
            pipe.fit(texts[n_test:], y[n_test:])
            fit_s = time.perf_counter() - t
            t = time.perf_counter()
            labels, _ = pipe.predict_topk(texts[:n_test], k=5)
            pred_s = time.perf_counter() - t
        except Exception as exc:  # noqa: BLE001
            return dict(out, skipped=f"device={device}: {type(exc).__name__}: {exc}")
        out[device] = {"fit_s": fit_s, "predict_topk_s": pred_s,
                       "p_at_1": float((labels[:, 0] == y[:n_test]).mean()),
                       "device_": getattr(pipe[-1], "device_", None)}
        print(f"[mach] {device}: fit {fit_s:.1f}s predict_topk {pred_s:.2f}s "
              f"P@1 {out[device]['p_at_1']:.3f}", flush=True)
    out["fit_speedup"] = out["cpu"]["fit_s"] / out["cuda"]["fit_s"]
    out["predict_speedup"] = out["cpu"]["predict_topk_s"] / out["cuda"]["predict_topk_s"]
    return out


def _read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def bench_lsh_mlp(args):
    import skmach.neural_network._lsh_mlp as lsh_mod
    from skmach.neural_network import LSHSparseMLPClassifier

    if not _uses_gpu_module(lsh_mod):
        return {"skipped": "device='cuda' is not wired into LSHSparseMLPClassifier yet "
                           "(skmach/neural_network/_lsh_mlp.py does not use skmach._gpu)"}
    d = DATA / "mnist"
    X = _read_idx(d / "train-images-idx3-ubyte.gz")[: args.mnist_n].reshape(-1, 784)
    y = _read_idx(d / "train-labels-idx1-ubyte.gz")[: args.mnist_n]
    Xt = _read_idx(d / "t10k-images-idx3-ubyte.gz")[:2000].reshape(-1, 784)
    yt = _read_idx(d / "t10k-labels-idx1-ubyte.gz")[:2000]
    X, Xt = (X / 255.0).astype(np.float32), (Xt / 255.0).astype(np.float32)
    out = {"n_train": len(X), "n_test": len(Xt)}
    for device in ("cpu", "cuda"):
        clf = LSHSparseMLPClassifier(hidden_layer_sizes=(1000,), n_epochs=args.mnist_epochs,
                                     random_state=0, device=device)
        try:
            t = time.perf_counter()
            clf.fit(X, y)
            fit_s = time.perf_counter() - t
            t = time.perf_counter()
            acc = float(clf.score(Xt, yt))
            pred_s = time.perf_counter() - t
        except Exception as exc:  # noqa: BLE001
            return dict(out, skipped=f"device={device}: {type(exc).__name__}: {exc}")
        out[device] = {"fit_s": fit_s, "predict_s": pred_s, "accuracy": acc}
        print(f"[lsh-mlp] {device}: fit {fit_s:.1f}s predict {pred_s:.2f}s acc {acc:.3f}", flush=True)
    out["fit_speedup"] = out["cpu"]["fit_s"] / out["cuda"]["fit_s"]
    out["predict_speedup"] = out["cpu"]["predict_s"] / out["cuda"]["predict_s"]
    return out


def to_markdown(res):
    lines = [f"# GPU benchmark ({res['device'].get('name') or res['device'].get('nvidia_smi')})", "",
             f"Command: `{res['command']}`", "",
             f"nvidia-smi: {res['device'].get('nvidia_smi')}; memory bandwidth roofline "
             f"{res['device'].get('bandwidth_GBps') or float('nan'):.0f} GB/s", "",
             "## (a) Bucket scoring fused with top-k", "",
             "| aggregation | n x K | R | B | k | GPU s | class scores/s | gather GB/s | "
             "gather / DRAM roofline | DRAM GB/s | speed-up per sample vs CPU | same top-k |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res.get("scoring", []):
        lines.append(
            f"| {r['aggregation']} | {r['n']} x {r['K']} | {r['R']} | {r['B']} | {r['k']} | "
            f"{r['gpu_s']:.4f} | {r['class_scores_per_s']:.3e} | {r['gather_GBps']:.0f} | "
            f"{(r['gather_vs_dram_roofline'] or 0):.2f} | {r['dram_GBps']:.1f} | "
            f"{r['speedup_per_sample']:.1f} | {r['same_topk_as_cpu']} |")
    for key, title in (("mach", "(b) MACHClassifier on debian-paths"),
                       ("lsh_mlp", "(c) LSHSparseMLPClassifier on MNIST")):
        lines += ["", f"## {title}", ""]
        r = res.get(key, {})
        if "skipped" in r:
            lines.append(f"skipped: {r['skipped']}")
            continue
        for dev in ("cpu", "cuda"):
            if dev in r:
                lines.append(f"- {dev}: " + ", ".join(f"{a}={b:.4g}" if isinstance(b, float)
                                                       else f"{a}={b}" for a, b in r[dev].items()))
        for a in ("fit_speedup", "predict_speedup"):
            if a in r:
                lines.append(f"- {a} (cpu time / cuda time): {r[a]:.2f}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-samples", type=int, default=2048, help="samples of the scoring benchmark")
    p.add_argument("--n-classes", type=int, default=1_000_000)
    p.add_argument("--n-repetitions", type=int, default=16)
    p.add_argument("--n-buckets", type=int, default=1024)
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--aggregations", nargs="+", default=["mean", "logmean", "min"])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--cpu-samples", type=int, default=16, help="samples scored by the CPU reference")
    p.add_argument("--debian-n", type=int, default=20000, help="debian-paths subset (train + test)")
    p.add_argument("--mach-buckets", type=int, default=512)
    p.add_argument("--mach-epochs", type=int, default=3)
    p.add_argument("--mnist-n", type=int, default=10000)
    p.add_argument("--mnist-epochs", type=int, default=2)
    p.add_argument("--dry-run", action="store_true",
                   help="no GPU: run the scoring case on the NumPy stand-in for CuPy, tiny sizes")
    p.add_argument("--time-budget", type=float, default=None,
                   help="seconds; cases that would start after it are skipped")
    p.add_argument("--skip-estimators", action="store_true")
    p.add_argument("--prefix", default="gpu_bench", help="results/<prefix>.{json,md}")
    args = p.parse_args(argv)

    import contextlib

    from skmach._device import cuda_available

    t_start = time.perf_counter()
    res = {"command": shlex.join([sys.executable] + sys.argv), "args": vars(args),
           "device": device_info() if not args.dry_run else {"name": "dry-run stand-in"}}
    RESULTS.mkdir(parents=True, exist_ok=True)

    def save():  # rewritten after each case: a time-out keeps what finished
        (RESULTS / f"{args.prefix}.json").write_text(json.dumps(res, indent=2, default=str))

    save()
    ctx = contextlib.nullcontext()
    if args.dry_run:
        from skmach._gpu._standin import installed

        ctx = installed()
        args.n_samples, args.n_classes, args.n_buckets, args.repeat = 8, 2000, 32, 1
        args.n_repetitions, args.cpu_samples, args.skip_estimators = 4, 4, True
    with ctx:
        if not cuda_available():
            print("FAILED: no CuPy or no CUDA device")
            res["error"] = "no CuPy or no CUDA device"
            save()
            return 1
        bw = res["device"].get("bandwidth_GBps")

        def on_case(rows):
            res["scoring"] = rows
            save()

        res["scoring"] = bench_scoring(args, bw, on_case)
        save()
        if not args.skip_estimators:
            for key, fn in (("mach", bench_mach), ("lsh_mlp", bench_lsh_mlp)):
                if args.time_budget and time.perf_counter() - t_start > args.time_budget / 2:
                    res[key] = {"skipped": "time budget"}
                else:
                    try:
                        res[key] = fn(args)
                    except Exception as exc:  # noqa: BLE001
                        res[key] = {"skipped": f"{type(exc).__name__}: {exc}"}
                print(f"[{key}] {res[key].get('skipped', 'done')}", flush=True)
                save()
    (RESULTS / f"{args.prefix}.md").write_text(to_markdown(res))
    print(f"wrote {RESULTS / args.prefix}.json")
    bad = [r["aggregation"] for r in res["scoring"] if not r["same_topk_as_cpu"]]
    if bad:
        print(f"FAILED: top-k differs from the CPU for {bad}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
