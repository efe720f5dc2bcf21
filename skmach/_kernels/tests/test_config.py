"""Numba settings shared by the kernels: cache location and threads."""

import numba

import skmach._kernels as kernels


def test_cache_falls_back_to_a_temporary_directory(monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setattr(kernels, "_writable", lambda path: False)
    monkeypatch.setattr(numba.config, "CACHE_DIR", "")
    kernels._ensure_cache_dir()
    assert "skmach-numba-" in numba.config.CACHE_DIR


def test_cache_left_alone_when_writable_or_set(monkeypatch, tmp_path):
    monkeypatch.setattr(numba.config, "CACHE_DIR", "")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    kernels._ensure_cache_dir()
    assert numba.config.CACHE_DIR == ""
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    monkeypatch.setattr(kernels, "_writable", lambda path: True)
    kernels._ensure_cache_dir()
    assert numba.config.CACHE_DIR == ""


def test_numba_threads_follow_n_jobs_and_are_restored():
    before = numba.get_num_threads()
    with kernels.numba_threads(1):
        assert numba.get_num_threads() == 1
    with kernels.numba_threads(-1):
        assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS
    assert numba.get_num_threads() == before
    assert kernels.n_threads_for(None) == 1


def test_small_kernels_run_on_one_thread_and_threads_are_restored():
    with kernels.numba_threads(2):
        n = numba.get_num_threads()
        with kernels.one_thread_if_small(kernels.MIN_PARALLEL_WORK - 1):
            assert numba.get_num_threads() == 1
        assert numba.get_num_threads() == n
        with kernels.one_thread_if_small(kernels.MIN_PARALLEL_WORK):
            assert numba.get_num_threads() == n
        try:
            with kernels.one_thread_if_small(0):
                raise KeyError
        except KeyError:
            pass
        assert numba.get_num_threads() == n
