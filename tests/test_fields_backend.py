"""Taichi backends: auto falls back to the CPU with a message; an explicit GPU backend that
cannot start is a clear error; stdout stays ours. Each case runs in its own process
(Taichi has one runtime per process)."""

import os
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.skipif(
    __import__("ctypes.util").util.find_library("cuda") is not None, reason="a CUDA driver is present here"
)


def _run(code: str, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "HYBRID_FIELD_THREADS"}
    environ.update(env)
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300, env=environ)


def test_auto_falls_back_to_the_cpu_with_one_message_and_a_clean_stdout():
    r = _run(
        "from hybrid.fields import backend\n"
        "b = backend.ensure('auto', True)\n"
        "print(b.arch, b.threads, b.deterministic)\n"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"cpu {os.cpu_count()} True"  # every core; nothing from Taichi on stdout
    assert "simulating fields on the CPU" in r.stderr


def test_explicit_cuda_without_a_device_is_a_clear_error():
    r = _run(
        "from hybrid.fields import backend\n"
        "try:\n"
        "    backend.ensure('cuda', True)\n"
        "except backend.BackendError as e:\n"
        "    print('ERROR', e)\n"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ERROR") and "arch: auto" in r.stdout and "arch: cpu" in r.stdout


def test_a_different_request_with_live_solvers_is_refused():
    r = _run(
        "from hybrid.fields import backend\n"
        "backend.ensure('cpu', True, threads=1)\n"
        "backend.acquire()\n"
        "print(backend.ensure('cpu', False, threads=1).threads)\n"  # deterministic changes nothing
        "try:\n"
        "    backend.ensure('cpu', True, threads=2)\n"
        "except backend.BackendError as e:\n"
        "    print('ERROR', e)\n"
        "backend.release()\n"
        "print(backend.ensure('cpu', True, threads=2).threads)\n"
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "1"
    assert lines[1].startswith("ERROR") and "close the World" in lines[1]
    assert lines[-1] == "2"


def test_the_thread_count_comes_from_the_environment_and_a_bad_value_is_named():
    code = (
        "from hybrid.fields import backend\n"
        "try:\n"
        "    print(backend.ensure('cpu', True).threads)\n"
        "except backend.BackendError as e:\n"
        "    print('ERROR', e)\n"
    )
    r = _run(code, HYBRID_FIELD_THREADS="1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1"
    r = _run(code, HYBRID_FIELD_THREADS="0")
    assert r.stdout.strip() == str(os.cpu_count())
    for bad in ("two", "-1"):
        r = _run(code, HYBRID_FIELD_THREADS=bad)
        assert r.stdout.startswith("ERROR") and "HYBRID_FIELD_THREADS" in r.stdout and repr(bad) in r.stdout
