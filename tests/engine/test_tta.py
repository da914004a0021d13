"""Test-time augmentation: option validation, flip equivariance (a mirror-symmetric image gets a symmetric
map, which a single view does not give), scales = the mean of single-scale predictions, CLI wiring."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import one_error_line, run_cli
from test_predict import SIZE, SMALL, SMALL_META, _save, _textured

from jittor_pranet.errors import UserError


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return _save(tmp_path_factory.mktemp("ckpt") / "small.pkl", SMALL, 0, SMALL_META, encoder="pvt_v2_b0")


@pytest.fixture(scope="module")
def model(ckpt):
    from jittor_pranet.engine.inference import load_model

    net, _ = load_model(ckpt)
    return net


def test_option_parsing_and_validation():
    from jittor_pranet.engine.tta import parse_modes, parse_scales, scale_sizes

    assert parse_modes(None) == () and parse_modes(["none"]) == ()
    assert parse_modes(["scales,flip"]) == ("flip", "scales") == parse_modes(["flip", "scales", "flip"])
    assert parse_scales("0.75, 1,1.25") == (0.75, 1.0, 1.25)
    assert scale_sizes(352, (0.75, 1, 1.25)) == (256, 352, 448)  # the official training scales
    assert scale_sizes(160, (0.75, 1, 1.25)) == (128, 160, 192)
    for bad in ("flop", "flip,rotate"):
        with pytest.raises(UserError, match="--tta"):
            parse_modes([bad])
    for bad in ("a", "0", "-1", "1,,nan", "inf", ""):
        with pytest.raises(UserError, match="--tta-scales"):
            parse_scales(bad)
    with pytest.raises(UserError, match="both give 352"):
        scale_sizes(352, (1.0, 1.02))
    with pytest.raises(UserError, match="smallest input"):
        scale_sizes(64, (0.2,))


def test_flip_tta_is_flip_equivariant(model):
    from jittor_pranet.engine.inference import Predictor
    from jittor_pranet.engine.tta import TTAPredictor

    rng = np.random.default_rng(0)
    img = _textured(rng, SIZE, SIZE)
    plain = Predictor(model, size=SIZE, batch_size=2)
    tta = TTAPredictor(model, size=SIZE, batch_size=2, modes=["flip"])
    assert tta.views == 4
    p, p_h, p_v = tta.predict_batch([img, img[:, ::-1].copy()]) + tta.predict_batch([img[::-1].copy()])
    np.testing.assert_allclose(p_h, p[:, ::-1], atol=2e-6)
    np.testing.assert_allclose(p_v, p[::-1], atol=2e-6)
    # a mirror-symmetric image (both axes) gets a symmetric map; a single view does not (the test can fail)
    sym = np.maximum(img, img[:, ::-1])
    sym = np.maximum(sym, sym[::-1]).copy()
    q = tta.predict_image(sym)
    np.testing.assert_allclose(q, q[:, ::-1], atol=2e-6)
    np.testing.assert_allclose(q, q[::-1], atol=2e-6)
    single = plain.predict_image(sym)
    assert np.abs(single - single[:, ::-1]).max() > 1e-3
    # the average of the four views, computed here view by view
    views = [plain.predict_image(sym), plain.predict_image(sym[:, ::-1].copy())[:, ::-1],
             plain.predict_image(sym[::-1].copy())[::-1], plain.predict_image(sym[::-1, ::-1].copy())[::-1, ::-1]]
    np.testing.assert_allclose(q, np.mean(views, axis=0), atol=2e-6)


def test_scales_average_single_scale_predictions(model):
    from jittor_pranet.engine.inference import Predictor
    from jittor_pranet.engine.tta import TTAPredictor

    rng = np.random.default_rng(1)
    img = _textured(rng, 45, 70)
    tta = TTAPredictor(model, size=SIZE, batch_size=1, modes=["scales"], scales=(0.5, 1.0))
    assert tta.sizes == (32, 64) and tta.views == 2
    expected = np.mean([Predictor(model, size=s, batch_size=1).predict_image(img) for s in (32, 64)], axis=0)
    got = tta.predict_image(img)
    assert got.shape == (45, 70)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    both = TTAPredictor(model, size=SIZE, batch_size=1, modes=["flip", "scales"], scales=(0.5, 1.0))
    assert both.views == 8 and "8 forward passes" in both.describe()


def test_cli_tta_predict_and_errors(tmp_path, capsys, ckpt):
    import cv2

    rng = np.random.default_rng(2)
    img = tmp_path / "in" / "a.png"
    img.parent.mkdir()
    cv2.imwrite(str(img), _textured(rng, 50, 61))
    base = ["predict", img, "--checkpoint", ckpt, "--size", SIZE, "--no-progress"]
    code, _, err = run_cli(base + ["--out", tmp_path / "plain"], capsys)
    assert code == 0, err
    code, _, err = run_cli(base + ["--out", tmp_path / "tta", "--tta", "flip,scales", "--tta-scales", "0.5,1"], capsys)
    assert code == 0, err
    assert "8 forward passes" in err
    plain = cv2.imread(str(tmp_path / "plain" / "a.png"), cv2.IMREAD_GRAYSCALE)
    tta = cv2.imread(str(tmp_path / "tta" / "a.png"), cv2.IMREAD_GRAYSCALE)
    assert plain.shape == tta.shape == (50, 61) and np.abs(plain.astype(int) - tta).max() > 0
    for extra, needle in ((["--tta", "rotate"], "--tta"), (["--tta", "scales", "--tta-scales", "1,1.01"], "both give"),
                          (["--tta", "scales", "--tta-scales", "x"], "--tta-scales")):
        code, _, err = run_cli(base + ["--out", tmp_path / "bad"] + extra, capsys)
        assert code == 2 and needle in one_error_line(err)
        assert "model:" not in err  # refused before the model was loaded
