"""Send Ctrl-C (or SIGTERM) to `predict` or `train` at random moments, many times, and count what happens.

Each try starts the command in its own process group, waits a random time (uniform in [0, --max-delay]
seconds: during Python's start-up, Jittor's import, kernel compilation, the first batch or the writing
of outputs; by default the length of one unsignalled run, measured first) and signals the whole group,
as a terminal or a scheduler does. A try passes when the process exits with 130 (SIGINT) or 143
(SIGTERM) within --within seconds, or, signalled in its last moments, ends with exit 0 and every output
written (counted apart as "completed"), with no abort (glibc heap errors, SIGABRT), no traceback, and
every file it left complete: each predicted PNG decodes with the
input's size and no temporary file is left; a training run's last.pkl, when one exists, reads back
with its resume state, and a run stopped before it leaves no run folder.

Jittor is never imported by this process (a forked child of a process holding Jittor's threads is a
different experiment): fixtures and file checks run in fresh interpreters (``--worker``).

    python tools/stress_interrupt.py --command predict --tries 50 --json docs/bench/stress_predict.json
    python tools/stress_interrupt.py --command train --tries 50 --signal TERM
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
N_IMAGES = 300
IMAGE_HW = (90, 110)


# ------------------------------------------------------------------ workers (fresh interpreters)

def _worker_fixtures(work: Path) -> None:
    import numpy as np
    from PIL import Image

    from jittor_pranet import build_model, save_checkpoint
    from jittor_pranet.data import make_synthetic_polyps

    save_checkpoint(build_model("pranet_v2_pvt", encoder="pvt_v2_b0"), work / "model.pkl",
                    meta={"model": "pranet_v2_pvt", "num_classes": 1, "encoder": "pvt_v2_b0"})
    images = work / "images"
    images.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        Image.fromarray(rng.integers(0, 255, IMAGE_HW + (3,), dtype=np.uint8)).save(images / f"{i:03d}.png")
    make_synthetic_polyps(work / "syn", n_train=24, n_test=2, size=((64, 64), (64, 64)), seed=5)


def _worker_check(kind: str, target: Path) -> None:
    """Print a JSON verdict on the files one try left behind."""
    problems = []
    if kind == "predict":
        from PIL import Image

        if target.exists():
            for path in sorted(target.iterdir()):
                if path.suffix != ".png" or path.name.startswith("."):
                    problems.append(f"stray file {path.name}")
                    continue
                try:
                    with Image.open(path) as img:
                        img.load()
                        if img.size[::-1] != IMAGE_HW:
                            problems.append(f"{path.name}: size {img.size}")
                except OSError as exc:
                    problems.append(f"{path.name}: {exc}")
        files = len(list(target.glob("*.png"))) if target.exists() else 0
    else:
        from jittor_pranet import checkpoint as ck

        last = target / "last.pkl"
        files = 0
        if last.is_file():
            try:
                meta = ck.read_state_dict(last).meta
                if "train_state" not in meta:
                    problems.append("last.pkl has no resume state")
                files = 1
            except Exception as exc:  # any failure to read is what we are counting
                problems.append(f"last.pkl unreadable: {exc}")
            stray = [p.name for p in target.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".")]
            problems += [f"stray file {name}" for name in stray]
        elif target.exists():
            problems.append(f"run folder left without last.pkl: {sorted(p.name for p in target.iterdir())}")
    complete = kind == "predict" and files == N_IMAGES and not problems  # train never completes in a try
    print(json.dumps({"files": files, "problems": problems, "complete": complete}))


# ------------------------------------------------------------------ the tool

def _command(kind: str, work: Path, out: Path):
    base = [sys.executable, "-m", "jittor_pranet"]
    if kind == "predict":
        return base + ["predict", "--checkpoint", str(work / "model.pkl"), str(work / "images"), "--out", str(out),
                       "--size", "96", "--batch-size", "1", "--no-progress"]
    return base + ["train", "--no-progress", "--run-dir", str(out), f"data.train={work / 'syn' / 'TrainDataset'}",
                   "model.name=pranet_v2_pvt", "model.encoder=pvt_v2_b0", "data.train_size=64",
                   "train.batch_size=2", "train.multi_scale=[1.0]", "data.num_workers=1", "train.epochs=50",
                   "train.checkpoint_every=2", "output.predict_test=false"]


def _unsignalled_seconds(kind: str, work: Path, env) -> float:
    """How long one run takes here, now: the range of moments worth signalling. ``train`` runs 50
    epochs, far past anything a signal needs, so its range is capped at 60 s."""
    out = work / "tries" / "unsignalled"
    start = time.time()
    try:
        subprocess.run(_command(kind, work, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=env, cwd=work, timeout=60 if kind == "train" else 900)
    except subprocess.TimeoutExpired:
        pass
    return time.time() - start


def _in_fresh_python(args, env):
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"error: worker {args[:2]} failed: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout


def _as_from_a_terminal() -> None:
    """In the child: Ctrl-C and SIGTERM at their defaults, as a command typed at a terminal starts. A
    tool started in the background of a script (``tool &``) runs with SIGINT ignored, and its children
    would inherit that: every try would then measure an ignored signal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _one_try(kind: str, work: Path, index: int, delay: float, sig: int, env) -> dict:
    out = work / "tries" / f"{index:03d}"
    proc = subprocess.Popen(_command(kind, work, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env=env, cwd=work, preexec_fn=_as_from_a_terminal)
    start = time.time()
    finished_early = False
    while time.time() - start < delay:
        if proc.poll() is not None:
            finished_early = True
            break
        time.sleep(0.01)
    sent = time.time()
    if not finished_early:
        os.killpg(proc.pid, sig)
    try:
        _, err = proc.communicate(timeout=120)
        hung = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        hung = True
    seconds = time.time() - sent
    verdict = json.loads(_in_fresh_python(["--worker", "check", kind, str(out)], env))
    expected = 128 + sig
    abort = proc.returncode in (-signal.SIGABRT, 128 + signal.SIGABRT) or "corrupted" in err or "double free" in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    row = {"try": index, "delay_s": round(delay, 3), "rc": proc.returncode, "exit_s": round(seconds, 3),
           "finished_before_signal": finished_early, "hung": hung, "abort": abort,
           "traceback": "Traceback" in err, "last_line": lines[-1] if lines else "",
           "files": verdict["files"], "problems": verdict["problems"]}
    # signalled while already writing its last outputs or exiting: the work is done, exit 0 is right
    row["completed"] = (not finished_early and proc.returncode == 0 and verdict.get("complete", False)
                        and seconds <= ARGS.within)
    row["ok"] = (not hung and not abort and not row["traceback"] and not verdict["problems"]
                 and (finished_early or row["completed"]
                      or (proc.returncode == expected and seconds <= ARGS.within)))
    return row


def _summary(rows, sig_name: str, within: float) -> str:
    signalled = [r for r in rows if not r["finished_before_signal"]]
    times = [r["exit_s"] for r in signalled] or [0.0]
    code = 128 + getattr(signal, 'SIG' + sig_name)
    stopped = sum(r["ok"] and not r.get("completed") for r in signalled)
    lines = [
        f"| tries | signalled | exit {code} within {within:g} s | completed (exit 0, all outputs) | aborts | tracebacks | "
        "bad files | hangs | exit s median / max | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {len(rows)} | {len(signalled)} | {stopped} | {sum(bool(r.get('completed')) for r in signalled)} | "
        f"{sum(r['abort'] for r in rows)} | "
        f"{sum(r['traceback'] for r in rows)} | {sum(bool(r['problems']) for r in rows)} | {sum(r['hung'] for r in rows)} | "
        f"{statistics.median(times):.2f} / {max(times):.2f} | {'pass' if all(r['ok'] for r in rows) else 'FAIL'} |",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    global ARGS
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--command", choices=("predict", "train"), default="predict", help="the command to interrupt")
    p.add_argument("--tries", type=int, default=50, help="how many times (default 50)")
    p.add_argument("--signal", choices=("INT", "TERM"), default="INT", help="INT (Ctrl-C, default) or TERM")
    p.add_argument("--max-delay", type=float, default=None,
                   help="latest moment to signal, seconds after start (default: the length of one unsignalled run, "
                        "measured first, so that every moment from start-up to the last output is drawn)")
    p.add_argument("--within", type=float, default=3.0, help="seconds allowed from the signal to the exit (default 3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random moments")
    p.add_argument("--work", default=None, help="working folder (default: a temporary folder, removed after)")
    p.add_argument("--json", default=None, metavar="PATH", help="write every try and the summary as JSON")
    p.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    ARGS = args = p.parse_args(argv)
    if args.worker:
        if args.worker[0] == "fixtures":
            _worker_fixtures(Path(args.worker[1]))
        else:
            _worker_check(args.worker[1], Path(args.worker[2]))
        return 0
    if args.tries < 1:
        p.error("--tries must be >= 1")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    sig = getattr(signal, "SIG" + args.signal)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="stress-") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if not (work / "model.pkl").is_file():
            print("building fixtures (a random-weight pranet_v2_pvt, 300 images, synthetic polyps) ...", flush=True)
            _in_fresh_python(["--worker", "fixtures", str(work)], env)
        max_delay = args.max_delay
        if max_delay is None:
            max_delay = _unsignalled_seconds(args.command, work, env)
            print(f"one unsignalled {args.command} run: {max_delay:.1f} s", flush=True)
        rows = []
        for i in range(args.tries):
            row = _one_try(args.command, work, i, rng.uniform(0, max_delay), sig, env)
            rows.append(row)
            flag = "ok" if row["ok"] else "FAIL"
            print(f"try {i + 1:3d}/{args.tries}: signal at {row['delay_s']:6.2f} s, rc {row['rc']}, exit "
                  f"{row['exit_s']:.2f} s, files {row['files']}, {flag}"
                  + (f" ({'; '.join(row['problems'])[:200]} {row['last_line'][:120]})" if not row["ok"] else ""), flush=True)
    table = _summary(rows, args.signal, args.within)
    print(f"\n{args.command}, SIG{args.signal}, {args.tries} tries, moments uniform in [0, {max_delay:g}] s:\n{table}")
    if args.json:
        payload = {"command": args.command, "signal": args.signal, "tries": args.tries, "max_delay_s": max_delay,
                   "within_s": args.within, "seed": args.seed, "date": time.strftime("%Y-%m-%d %H:%M"),
                   "load_avg": os.getloadavg(), "rows": rows, "table": table}
        target = Path(args.json)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp_json = target.with_name(f".{target.name}.tmp")
        tmp_json.write_text(json.dumps(payload, indent=1) + "\n")
        os.replace(tmp_json, target)
    return 0 if all(r["ok"] for r in rows) else 1


ARGS = None

if __name__ == "__main__":
    sys.exit(main())
