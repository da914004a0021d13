"""Ctrl-C and SIGTERM that always end the command within seconds, with exit code 130 / 143.

Python turns SIGINT into ``KeyboardInterrupt`` only between bytecodes, and Jittor holds the GIL
while it runs kernels or compiles operators (measured: a 30 s matmul chain let a Python thread run
once). A Ctrl-C during a long training step or a compile storm on a cold cache would wait for it.
So the command-line process chains a small C handler in front of Python's: it passes the signal
on (Python still raises ``KeyboardInterrupt`` and cleans up when it can) and arms an alarm; if the
process is still alive ``grace`` seconds later, the alarm prints ``interrupted`` and leaves with
``_exit(130)``. SIGTERM takes the same path (Python raises ``errors.Terminated``; the alarm prints
``terminated`` and leaves with 143). Files are written atomically (temp file + rename), so even that path leaves no
half-written output behind, at worst a hidden ``.tmp``.

The handler is ten lines of C compiled once with the C compiler Jittor itself needs, cached beside
Jittor's kernels; without a compiler the CLI keeps Python's handling (``install_watchdog`` returns
False). Library users are unaffected: only ``jittor-pranet`` installs it.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

_SOURCE = r"""
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static struct sigaction previous_int, previous_term;
static unsigned grace_seconds = 3;
static volatile sig_atomic_t exit_code = 130;

/* temporary files being written: removed before the alarm's _exit, so that none is left behind */
#define MAX_TEMPORARIES 64
static char temporaries[MAX_TEMPORARIES][4096];
static volatile sig_atomic_t temporary_used[MAX_TEMPORARIES];

int pranet_track_temporary(const char *path) {
    for (int i = 0; i < MAX_TEMPORARIES; i++) {
        if (!temporary_used[i]) {
            strncpy(temporaries[i], path, sizeof temporaries[i] - 1);
            temporaries[i][sizeof temporaries[i] - 1] = 0;
            temporary_used[i] = 1;
            return i;
        }
    }
    return -1;
}

void pranet_untrack_temporary(int slot) {
    if (slot >= 0 && slot < MAX_TEMPORARIES) temporary_used[slot] = 0;
}

/* folders a command created and removes again when it is stopped unfinished (unless `keep` exists) */
#define MAX_FOLDERS 8
static char folders[MAX_FOLDERS][4096], keeps[MAX_FOLDERS][4096];
static volatile sig_atomic_t folder_used[MAX_FOLDERS];

int pranet_track_folder(const char *folder, const char *keep) {
    for (int i = 0; i < MAX_FOLDERS; i++) {
        if (!folder_used[i]) {
            strncpy(folders[i], folder, sizeof folders[i] - 1);
            folders[i][sizeof folders[i] - 1] = 0;
            strncpy(keeps[i], keep, sizeof keeps[i] - 1);
            keeps[i][sizeof keeps[i] - 1] = 0;
            folder_used[i] = 1;
            return i;
        }
    }
    return -1;
}

void pranet_untrack_folder(int slot) {
    if (slot >= 0 && slot < MAX_FOLDERS) folder_used[slot] = 0;
}

static void remove_unfinished_folders(void) {
    for (int i = 0; i < MAX_FOLDERS; i++) {
        if (!folder_used[i] || (keeps[i][0] && access(keeps[i], F_OK) == 0)) continue;
        pid_t pid = vfork();  /* async-signal-safe enough: the child only execs */
        if (pid == 0) {
            char *argv[] = {"rm", "-rf", "--", folders[i], NULL};
            execv("/bin/rm", argv);
            _exit(127);
        }
        if (pid > 0) {
            int status;
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        }
    }
}

static void on_alarm(int sig) {
    static const char interrupted[] = "interrupted\n", terminated[] = "terminated\n";
    (void)sig;
    for (int i = 0; i < MAX_TEMPORARIES; i++)
        if (temporary_used[i]) unlink(temporaries[i]);
    remove_unfinished_folders();
    if (exit_code == 143) {
        if (write(2, terminated, sizeof terminated - 1) < 0) {}
    } else if (write(2, interrupted, sizeof interrupted - 1) < 0) {}
    _exit(exit_code);
}

static void on_signal(int sig, siginfo_t *info, void *ctx) {
    struct sigaction *previous = sig == SIGTERM ? &previous_term : &previous_int;
    if (sig == SIGTERM) exit_code = 143;
    if (previous->sa_flags & SA_SIGINFO) {
        if (previous->sa_sigaction) previous->sa_sigaction(sig, info, ctx);
    } else if (previous->sa_handler != SIG_IGN && previous->sa_handler != SIG_DFL) {
        previous->sa_handler(sig);
    }
    if (alarm(grace_seconds) != 0) alarm(1);  /* a second signal: leave sooner */
}

int pranet_install_interrupt_watchdog(unsigned seconds) {
    struct sigaction sa, al;
    grace_seconds = seconds;
    memset(&al, 0, sizeof al);
    al.sa_handler = on_alarm;
    sigemptyset(&al.sa_mask);
    if (sigaction(SIGALRM, &al, NULL) != 0) return -1;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    /* a signal the process was started ignoring (a background job of a script, SIG_IGN inherited)
       stays ignored: the watchdog must not end a process that asked not to be interrupted */
    if (sigaction(SIGTERM, NULL, &previous_term) != 0) return -1;
    if (previous_term.sa_handler != SIG_IGN && sigaction(SIGTERM, &sa, &previous_term) != 0) return -1;
    if (sigaction(SIGINT, NULL, &previous_int) != 0) return -1;
    if (previous_int.sa_handler != SIG_IGN && sigaction(SIGINT, &sa, &previous_int) != 0) return -1;
    return 0;
}
"""

_LIB: Optional[ctypes.CDLL] = None
_TRACKER: Optional[ctypes.PyDLL] = None  # the same library, called with the GIL held (one caller at a time)


def _compiler() -> Optional[str]:
    for name in (os.environ.get("cc_path"), "cc", "gcc", "g++", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _library_path() -> Path:
    from .runtime import info

    digest = hashlib.sha1(_SOURCE.encode()).hexdigest()[:12]
    return Path(info().jittor_home or Path.home() / ".cache" / "jittor") / "jittor_pranet" / f"interrupt_{digest}.so"


def _build(target: Path) -> bool:
    cc = _compiler()
    if cc is None:
        return False
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            src, out = Path(tmp) / "interrupt.c", Path(tmp) / "interrupt.so"
            src.write_text(_SOURCE)
            lang = ["-x", "c"] if not cc.endswith("++") else []
            done = subprocess.run([cc, *lang, "-O2", "-shared", "-fPIC", "-o", str(out), str(src)],
                                  capture_output=True, timeout=120)
            if done.returncode != 0 or not out.is_file():
                return False
            os.replace(out, target)  # atomic: another process may be building the same file
        return True
    except (OSError, subprocess.SubprocessError):
        return False


def install_watchdog(grace_seconds: int = 3) -> bool:
    """Chain the C handler in front of the current SIGINT and SIGTERM handlers (install Python's
    handlers first: a later ``signal.signal`` replaces the chain). Returns whether it is active."""
    global _LIB, _TRACKER
    import threading

    if threading.current_thread() is not threading.main_thread():
        return False
    if _LIB is None:
        path = _library_path()
        if not path.is_file() and not _build(path):
            return False
        try:
            _LIB = ctypes.CDLL(str(path))
            _TRACKER = ctypes.PyDLL(str(path))
        except OSError:
            return False
        _TRACKER.pranet_track_temporary.argtypes = [ctypes.c_char_p]
        _TRACKER.pranet_untrack_temporary.argtypes = [ctypes.c_int]
        _TRACKER.pranet_untrack_temporary.restype = None
        _TRACKER.pranet_track_folder.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        _TRACKER.pranet_untrack_folder.argtypes = [ctypes.c_int]
        _TRACKER.pranet_untrack_folder.restype = None
    return _LIB.pranet_install_interrupt_watchdog(ctypes.c_uint(grace_seconds)) == 0


@contextmanager
def removed_if_killed(path: "os.PathLike[str] | str") -> Iterator[None]:
    """While the block runs, the watchdog removes ``path`` before it ends the process (a temporary
    file being written when the grace expired would otherwise stay behind). Register the name
    before the file is created. Does nothing when the watchdog is not installed (library use)."""
    slot = -1
    if _TRACKER is not None:
        slot = _TRACKER.pranet_track_temporary(os.fsencode(path))
    try:
        yield
    finally:
        if slot >= 0:
            _TRACKER.pranet_untrack_temporary(slot)


@contextmanager
def folder_removed_if_killed(folder: "os.PathLike[str] | str", keep: "os.PathLike[str] | str | None" = None
                             ) -> Iterator[None]:
    """While the block runs, the watchdog removes ``folder`` (all of it: pass only a folder this
    command created) before it ends the process, unless ``keep`` exists by then. Does nothing when the
    watchdog is not installed."""
    slot = -1
    if _TRACKER is not None:
        slot = _TRACKER.pranet_track_folder(os.fsencode(folder), os.fsencode(keep) if keep else b"")
    try:
        yield
    finally:
        if slot >= 0:
            _TRACKER.pranet_untrack_folder(slot)


__all__ = ["folder_removed_if_killed", "install_watchdog", "removed_if_killed"]
