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


_STUCK_POOL_AT_EXIT = """
import signal
import time
from multiprocessing import Pool
from jittor_pranet.ops import jt
import jittor_utils
from jittor_pranet import runtime

assert jittor_utils.pool_cleanup is runtime._kill_compile_pool_at_exit
jt.array([1.0]).sync()
jittor_utils.p.__exit__(None, None, None)
# a worker that Pool.terminate() cannot end, like the one seen keeping an mpirun rank alive at exit
jittor_utils.p = Pool(2, initializer=signal.signal, initargs=(signal.SIGTERM, signal.SIG_IGN))
assert jittor_utils.p.map(abs, [-1, -2]) == [1, 2]
jittor_utils.p.apply_async(time.sleep, (3600,))
time.sleep(0.5)
print("ok")
"""


def test_the_compile_pool_is_killed_at_exit_not_terminated():
    """Jittor's exit hook (``Pool.terminate()`` then ``join``) waits forever on a worker that does not
    end on SIGTERM (here one that ignores it and is busy); ours kills the workers, so the process ends."""
    done = subprocess.run([sys.executable, "-c", _STUCK_POOL_AT_EXIT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
