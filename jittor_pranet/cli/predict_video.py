"""The video side of ``jittor-pranet predict``: video files, ``--camera N`` and ``--sequence`` folders.

Not a command of its own: ``predict`` hands its arguments here when its input is a video (by extension or
by OpenCV probe), a camera or an image sequence (:mod:`jittor_pranet.engine.video` does the work).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List

from ..errors import UserError

VIDEO_HELP = """\
Video: INPUT may be video files (.mp4, .avi, .mov, .mkv, ...; anything OpenCV decodes), --camera N a
camera, or with --sequence each INPUT a folder of frames (natural name order). Each source gives
<name>_overlay.avi in --out (region tinted and outlined, at the source's frame rate and size), with
--mask-video <name>_mask.avi, with --frame-masks <name>_frames/<name>_<index>.png (the per-frame maps
that `predict` writes for an image; + _mask.png with --threshold). Frames that cannot be decoded are
reported and skipped. The throughput (frames/s) is printed at the end; Ctrl-C ends a camera stream
and keeps what was recorded.
"""


def add_video_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("video, camera and image sequences")
    g.add_argument("--camera", type=int, default=None, metavar="N", help="predict the live stream of camera N")
    g.add_argument("--sequence", action="store_true",
                   help="each INPUT is a folder of video frames (images), predicted as one video")
    g.add_argument("--mask-video", action="store_true", help="also write <name>_mask.avi (0/255 mask video)")
    g.add_argument("--frame-masks", action="store_true",
                   help="also write every frame's map to <name>_frames/ (as predict writes for an image)")
    g.add_argument("--fps", type=float, default=None, metavar="F",
                   help="frame rate of the output videos for --sequence (default 25) and for sources that report "
                        "none (a video's own rate is kept)")
    g.add_argument("--video-codec", choices=["mjpg", "mp4v"], default="mjpg",
                   help="mjpg (default): Motion-JPEG .avi, any frame size; mp4v: MPEG-4 .mp4, smaller, but odd "
                        "frame sizes are rounded down to even ones by its writer")
    g.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames of each source")


def wants_video(args) -> bool:
    """True when ``predict`` should run the video path for these arguments."""
    from ..engine.video import is_video_file

    if args.camera is not None or args.sequence:
        return True
    videos = [item for item in args.inputs if is_video_file(item)]
    if videos and len(videos) != len(args.inputs):
        others = [item for item in args.inputs if item not in videos]
        raise UserError(f"videos ({', '.join(videos[:3])}) and images/folders ({', '.join(others[:3])}) in one run: "
                        "predict them in separate runs")
    return bool(videos)


def _check_args(args) -> None:
    if args.fps is not None and not 0 < args.fps <= 1000:
        raise UserError(f"--fps must be in (0, 1000], not {args.fps}")
    if args.max_frames is not None and args.max_frames < 1:
        raise UserError(f"--max-frames must be >= 1, not {args.max_frames}")
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise UserError(f"--threshold must be in [0, 1], not {args.threshold}")
    if args.camera is not None and args.inputs:
        raise UserError("--camera takes no INPUT; predict files in another run")
    if args.camera is None and not args.inputs:
        raise UserError("give INPUT files/folders, or --camera N")
    if getattr(args, "overlay", None) or getattr(args, "skip_bad", False):
        print("warning: --overlay/--skip-bad apply to images; a video always gets its overlay video and skips "
              "undecodable frames", file=sys.stderr)


def run_video(args) -> int:
    from ..engine.outputs import prepare_output_folder
    from ..engine.video import VideoOptions, format_summary, open_camera, open_sequence, open_video_file, predict_source
    from .common import build_predictor, open_checkpoint

    _check_args(args)
    loaded, spec, size = open_checkpoint(args)
    options = VideoOptions(threshold=args.threshold, mask_video=args.mask_video, frame_masks=args.frame_masks,
                           codec=args.video_codec, max_frames=args.max_frames, num_classes=spec.num_classes)
    out = Path(args.out)
    openers: List = []
    if args.camera is not None:
        openers.append(lambda: open_camera(args.camera, args.fps))
        names = [f"camera{args.camera}"]
    else:
        names = []
        for item in args.inputs:
            path = Path(item)
            if args.sequence:
                if not path.is_dir():
                    raise UserError(f"--sequence: {path} is not a folder")
                openers.append(lambda p=path: open_sequence(p, args.fps))
            else:
                openers.append(lambda p=path: open_video_file(p, args.fps))
            names.append(path.name if args.sequence else path.stem)
    owners = {}
    for item, name in zip(args.inputs or [f"--camera {args.camera}"], names):
        for output in options.output_names(name):
            if output in owners:
                raise UserError(f"{owners[output]} and {item} would both write {out / output}; "
                                "predict them in separate runs or rename one")
            owners[output] = item
            if args.inputs and (out / output).resolve() == Path(item).resolve():
                raise UserError(f"{out / output} would overwrite the input {item}; choose another --out")
    sources = []
    try:
        for opener in openers:  # opening decodes each source's first frame: bad input fails before the model loads
            sources.append(opener())
        prepare_output_folder(out, "--out")
        predictor = build_predictor(args, loaded, spec, size)
    except BaseException:
        for source in sources:
            source.close()
        raise
    summaries = []
    for source in sources:
        summary = predict_source(predictor, source, out, options, progress=not args.no_progress)
        summaries.append(summary)
        print(format_summary(summary))
        for path in summary.outputs:
            print(f"  wrote {path}")
    frames = sum(s.frames for s in summaries)
    seconds = sum(s.seconds for s in summaries)
    if len(summaries) > 1:
        print(f"all sources: {frames} frames in {seconds:.1f} s ({frames / max(seconds, 1e-9):.2f} frames/s)")
    return 0


__all__ = ["VIDEO_HELP", "add_video_args", "run_video", "wants_video"]
