"""After Ctrl-C the compile pool is abandoned without forking anything more: its maintenance thread is
stopped, so no replacement worker is forked later (a worker forked while a subprocess starts inherits
its exec-status pipe, and the caller's next ``subprocess.run`` then waited forever)."""
import subprocess
import sys
from multiprocessing import Pool, active_children

import jittor_pranet  # noqa: F401  (configures Jittor first)
from jittor_pranet import runtime


def test_abandoned_compile_pool_leaves_no_thread_and_no_worker():
    import jittor_utils

    had, previous = hasattr(jittor_utils, "p"), getattr(jittor_utils, "p", None)
    pool = Pool(2)
    try:
        assert pool.map(abs, [-1, -2, -3]) == [1, 2, 3]
        jittor_utils.p = pool
        runtime.abandon_compile_pool()
        assert not pool._worker_handler.is_alive(), "the pool would keep forking replacement workers"
        assert not [c for c in active_children() if c in pool._pool]
        assert not hasattr(jittor_utils, "p")
        for _ in range(5):
            assert subprocess.run([sys.executable, "-c", "pass"], timeout=60).returncode == 0
    finally:
        if had:
            jittor_utils.p = previous
        elif hasattr(jittor_utils, "p"):
            del jittor_utils.p
