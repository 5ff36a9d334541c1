"""Keeping freed memory in the process: big tensors allocated again stop faulting in pages."""

import sys

import pytest

pytest.importorskip("torch")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_reallocating_big_tensors_faults_no_new_pages() -> None:
    import subprocess

    # in a fresh process: the thresholds are process-wide and stay once set
    code = (
        "import resource, sys, torch\n"
        "from vpseg._allocator import keep_freed_memory\n"
        "if sys.argv[1] == '1': assert keep_freed_memory()\n"
        "def work():\n"
        "    for _ in range(20):\n"
        "        x = torch.ones(16_000_000); y = x * 2; del x, y\n"
        "work()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "work()\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n")
    faults = [int(subprocess.run([sys.executable, "-c", code, flag], capture_output=True,
                                 text=True, check=True).stdout) for flag in ("0", "1")]
    # glibc adapts its threshold up to 32 MiB by itself; 40 tensors of 64 MB above it are
    # 600 000 pages faulted in when each is mapped anew; reused from the heap, almost none
    assert faults[0] > 300_000
    assert faults[1] < faults[0] / 20

