"""``predict`` on videos and image sequences: output videos keep the source's frame count, size and rate;
each frame's map equals ``predict`` of that frame as an image; undecodable frames are reported and
skipped; bad input is one ``error:`` line, exit 2, and nothing written.

A random-weight PraNet-V2/PVTv2-b0 at a 64-px network input (fast), a 30-frame 97x75 video."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import one_error_line, run_cli
from test_predict import SIZE, SMALL, SMALL_META, _save, _textured

N_FRAMES, W, H, FPS = 30, 97, 75, 12.0


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return _save(tmp_path_factory.mktemp("ckpt") / "small.pkl", SMALL, 0, SMALL_META, encoder="pvt_v2_b0")


def _frames(n, h, w, seed=0):
    """A blob moving over noise: maps change from frame to frame."""
    rng = np.random.default_rng(seed)
    base = _textured(rng, h, w)
    out = []
    for i in range(n):
        img = base.copy()
        cv2.circle(img, (5 + (i * 3) % (w - 10), h // 2), 9, (250, 200, 40), -1)
        out.append(img)
    return out


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A 30-frame 97x75 12-fps Motion-JPEG AVI (OpenCV's own writer keeps odd sizes)."""
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"), FPS, (W, H))
    assert writer.isOpened()
    for rgb in _frames(N_FRAMES, H, W):
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _read_video(path):
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames, fps


def _no_temp_files(folder: Path):
    leftovers = [p.name for p in folder.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert not leftovers, leftovers


def test_video_outputs_match_source_and_image_predictions(tmp_path, capsys, ckpt, video):
    out = tmp_path / "out"
    code, stdout, err = run_cli(["predict", video, "--checkpoint", ckpt, "--size", SIZE, "--batch-size", 4,
                                 "--out", out, "--mask-video", "--frame-masks", "--threshold", 0.5,
                                 "--no-progress"], capsys)
    assert code == 0, err
    assert "frames/s" in stdout and f"{N_FRAMES} frames" in stdout
    for name in ("clip_overlay.avi", "clip_mask.avi"):
        frames, fps = _read_video(out / name)
        assert len(frames) == N_FRAMES, name
        assert frames[0].shape[:2] == (H, W), name
        assert fps == pytest.approx(FPS), name
    masks, _ = _read_video(out / "clip_mask.avi")
    maps = sorted((out / "clip_frames").glob("clip_??????.png"))
    assert len(maps) == N_FRAMES and len(list((out / "clip_frames").glob("*_mask.png"))) == N_FRAMES
    # the mask video shows the thresholded map (MJPEG is lossy: compare the regions, not the bytes)
    ref = cv2.imread(str(out / "clip_frames" / "clip_000007_mask.png"), cv2.IMREAD_GRAYSCALE)
    assert np.mean((masks[7][:, :, 1] > 127) == (ref > 127)) > 0.97
    # a frame's map equals `predict` of that frame (as decoded) saved as an image
    source, _ = _read_video(video)
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    picked = (0, 5, 29)
    for i in picked:
        cv2.imwrite(str(frames_dir / f"clip_{i:06d}.png"), source[i])
    code, _, err = run_cli(["predict", frames_dir, "--checkpoint", ckpt, "--size", SIZE, "--batch-size", 4,
                            "--out", tmp_path / "images", "--no-progress"], capsys)
    assert code == 0, err
    for i in picked:
        from_video = cv2.imread(str(out / "clip_frames" / f"clip_{i:06d}.png"), cv2.IMREAD_GRAYSCALE)
        from_image = cv2.imread(str(tmp_path / "images" / f"clip_{i:06d}.png"), cv2.IMREAD_GRAYSCALE)
        assert from_video.shape == (H, W)
        assert from_video.std() > 5  # a map with content, not a constant
        # bit-identical at the same batch position (frame 0: first in both runs); elsewhere float32 rounding
        # may move a rare pixel by one grey level
        diff = np.abs(from_video.astype(int) - from_image.astype(int))
        assert diff.max() <= (0 if i == 0 else 1), (i, diff.max())
    _no_temp_files(out)


def test_sequence_skips_undecodable_frames_and_counts_them(tmp_path, capsys, ckpt):
    seq = tmp_path / "seq"
    seq.mkdir()
    frames = _frames(7, 40, 53, seed=1)
    for i, rgb in enumerate(frames):
        cv2.imwrite(str(seq / f"f{i}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    (seq / "f3.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")  # frame 3 cannot be decoded
    out = tmp_path / "out"
    code, stdout, err = run_cli(["predict", "--sequence", seq, "--checkpoint", ckpt, "--size", SIZE,
                                 "--batch-size", 2, "--out", out, "--fps", 7, "--frame-masks", "--no-progress"], capsys)
    assert code == 0, err
    assert "frame 3 skipped" in err and "skipped 1 undecodable frame" in stdout
    written, fps = _read_video(out / "seq_overlay.avi")
    assert len(written) == 6 and written[0].shape[:2] == (40, 53) and fps == pytest.approx(7)
    names = sorted(p.name for p in (out / "seq_frames").glob("*.png"))
    assert names == [f"seq_{i:06d}.png" for i in (0, 1, 2, 4, 5, 6)]


def test_mp4v_codec_and_max_frames(tmp_path, capsys, ckpt, video):
    out = tmp_path / "out"
    code, stdout, err = run_cli(["predict", video, "--checkpoint", ckpt, "--size", SIZE, "--batch-size", 4,
                                 "--out", out, "--video-codec", "mp4v", "--max-frames", 6, "--no-progress"], capsys)
    assert code == 0, err
    frames, fps = _read_video(out / "clip_overlay.mp4")
    assert len(frames) == 6 and fps == pytest.approx(FPS)


@pytest.mark.parametrize("case", ["garbage_video", "camera", "out_is_file", "bad_codec", "video_and_image",
                                  "sequence_not_folder", "bad_fps"])
def test_bad_video_input_is_one_error_line(tmp_path, capsys, ckpt, video, case):
    out = tmp_path / "out"
    args = ["predict", "--checkpoint", ckpt, "--size", SIZE, "--out", out, "--no-progress"]
    if case == "garbage_video":
        bad = tmp_path / "broken.mp4"
        bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
        args.append(bad)
    elif case == "camera":
        args += ["--camera", 57]
    elif case == "out_is_file":
        out.write_text("a file")
        args.append(video)
    elif case == "bad_codec":
        args += [video, "--video-codec", "h265"]
    elif case == "video_and_image":
        img = tmp_path / "x.png"
        cv2.imwrite(str(img), np.zeros((8, 8, 3), np.uint8))
        args += [video, img]
    elif case == "sequence_not_folder":
        args += ["--sequence", video]
    elif case == "bad_fps":
        args += [video, "--fps", -3]
    if case == "bad_codec":  # refused by the argument parser: its usage line, then one error line, exit 2
        with pytest.raises(SystemExit) as exc:
            run_cli(args, capsys)
        assert exc.value.code == 2
        assert "invalid choice: 'h265'" in capsys.readouterr().err
    else:
        code, _, err = run_cli(args, capsys)
        assert code == 2
        one_error_line(err)
    if case != "out_is_file":
        assert not out.exists() or not any(out.iterdir())  # nothing written, not even a temporary file


def test_failure_mid_stream_leaves_nothing(tmp_path):
    """An error after some frames were written removes the partial videos and frame folder."""
    from jittor_pranet.engine.video import VideoOptions, open_sequence, predict_source

    seq = tmp_path / "seq"
    seq.mkdir()
    for i, rgb in enumerate(_frames(6, 32, 45)):
        cv2.imwrite(str(seq / f"{i}.png"), rgb)

    class Failing:
        batch_size = 2
        calls = 0

        def predict_batch(self, images):
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("model failed")
            return [np.full(im.shape[:2], 0.5, np.float32) for im in images]

    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(RuntimeError):
        predict_source(Failing(), open_sequence(seq), out, VideoOptions(mask_video=True, frame_masks=True),
                       progress=False)
    assert list(out.iterdir()) == []
