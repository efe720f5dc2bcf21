"""Command line: ``python -m skmach`` / ``skmach``."""

import argparse
import sys


def build_parser():
    parser = argparse.ArgumentParser(
        prog="skmach", description="Hashing-based extreme classification for scikit-learn."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train MACH on the embedded data set beside one-vs-rest")
    demo.add_argument("--n-jobs", type=int, default=2)
    demo.add_argument("--random-state", type=int, default=0)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo

        run_demo(n_jobs=args.n_jobs, random_state=args.random_state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
