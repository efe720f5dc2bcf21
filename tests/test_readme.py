"""Every Python example of the README runs as written.

The debian-paths example reads ``../shared/data/debian-paths/train.tsv.xz``;
here it runs on the first lines of that file when it is present (else on a
small file of the same format), so that the code is checked as written, not
its 1.2 million rows. The Dask example needs a running cluster and is only
compiled.
"""

import lzma
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEBIAN = "../shared/data/debian-paths/train.tsv.xz"


def _blocks():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def _small_debian(tmp_path, n=1500):
    out = tmp_path / "train.tsv.xz"
    src = ROOT / DEBIAN
    if src.exists():
        with lzma.open(src, "rt") as f:
            lines = [next(f) for _ in range(n)]
    else:
        lines = [f"usr/share/pkg{i % 50}/file{i}.txt\tpkg{i % 50}\n" for i in range(n)]
    with lzma.open(out, "wt") as f:
        f.writelines(lines)
    return out


def test_readme_has_examples():
    assert len(_blocks()) >= 3


@pytest.mark.parametrize("i", range(len(_blocks())))
def test_readme_example_runs(i, tmp_path, monkeypatch):
    code = _blocks()[i]
    compile(code, f"README block {i}", "exec")
    if "Client(" in code:  # needs a Dask scheduler
        return
    if DEBIAN in code:
        code = code.replace(DEBIAN, str(_small_debian(tmp_path)))
    monkeypatch.chdir(tmp_path)
    namespace = {}
    # the blocks build on each other, as a reader runs them in one session
    for earlier in _blocks()[:i]:
        if "Client(" not in earlier and DEBIAN not in earlier:
            exec(compile(earlier, "README", "exec"), namespace)
    exec(compile(code, f"README block {i}", "exec"), namespace)
