"""numpy's BLAS on the calling thread alone, in every program.

OpenBLAS (numpy's, and OpenCV's own copy) runs a large enough call on every core, and then its
worker threads spin, each holding a core for about 0.1 s after every such call, in case another
call comes: five 300x300 products 0.3 s apart cost a second thread 520 ms of CPU here, and 9 ms
with one thread. Our calls are small (a sentence against the emotion prototypes, a frame's warp),
and a second thread saves them nothing. But the spin took a core from a first sentence's speech:
on two cores, one spinning thread of chattr's used 130-330 ms of CPU during each 140-370 ms
first-sentence call. With BLAS on one thread, a chat's first audio came 12-60 ms sooner, and a
scene's second reply no longer came later than in a chat (bench/scene.py, 2026-12-06).

An OPENBLAS_NUM_THREADS of the environment's is left as it is.
"""

from __future__ import annotations

import os

VARIABLE = "OPENBLAS_NUM_THREADS"


def one_blas_thread() -> None:
    """BLAS calls on the calling thread alone: the libraries loaded already, and those loaded
    later in this process and its children (by the variable), unless the environment says."""
    if os.environ.get(VARIABLE):
        return
    os.environ[VARIABLE] = "1"
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
