"""``train.loss_weights`` (Table 4's loss components): validated, defaults are the official weights exactly."""
import numpy as np
import pytest

from jittor_pranet.config import load_config
from jittor_pranet.errors import UserError
from jittor_pranet.models import model_info


def _outputs(n=8, seed=0):
    from jittor_pranet.ops import jt

    rng = np.random.default_rng(seed)
    outs = [jt.array(rng.normal(size=(2, 3, 16, 16)).astype(np.float32)) for _ in range(n)]
    labels = jt.array(rng.integers(0, 3, (2, 16, 16)).astype(np.int64))
    return outs, labels


def _cfg(*overrides):
    return load_config(None, ["task=multiclass", "model.name=emcad_b2_dsra", *overrides])


def test_default_and_explicit_official_weights_reproduce_the_official_losses():
    from jittor_pranet.engine.multiclass import resolve_loss
    from jittor_pranet.losses.multiclass import multiclass_dsra_loss, multiclass_loss

    outs, labels = _outputs()
    official = float(multiclass_dsra_loss(outs, labels).item())
    assert float(resolve_loss(_cfg(), model_info("emcad_b2_dsra"))(outs, labels).item()) == official
    explicit = _cfg("train.loss_weights={ce: 0.5, dice: 0.7, bg_bce: 0.3}")
    assert float(resolve_loss(explicit, model_info("emcad_b2_dsra"))(outs, labels).item()) == official
    base = float(multiclass_loss(outs[:4], labels).item())
    assert float(resolve_loss(_cfg("train.loss=baseline"), model_info("emcad_b2"))(outs[:4], labels).item()) == base
    assert float(resolve_loss(_cfg("train.loss=baseline", "train.loss_weights={ce: 0.3, dice: 0.7}"), model_info("emcad_b2"))(
        outs[:4], labels).item()) == base


def test_a_zero_weight_switches_a_term_off():
    from jittor_pranet.engine.multiclass import resolve_loss
    from jittor_pranet.losses.multiclass import multiclass_dsra_loss

    outs, labels = _outputs(seed=1)
    for weights, triple in (("{ce: 0}", (0.0, 0.7, 0.3)), ("{dice: 0}", (0.5, 0.0, 0.3)),
                            ("{bg_bce: 0}", (0.5, 0.7, 0.0))):
        got = float(resolve_loss(_cfg(f"train.loss_weights={weights}"), model_info("emcad_b2_dsra"))(outs, labels).item())
        assert got == pytest.approx(float(multiclass_dsra_loss(outs, labels, weights=triple).item()), rel=1e-6)
        assert got != pytest.approx(float(multiclass_dsra_loss(outs, labels).item()), rel=1e-3)


@pytest.mark.parametrize("value,message", [
    ("{ce: -1}", "train.loss_weights.ce must be a number >= 0"),
    ("{cee: 1}", "unknown option train.loss_weights.cee"),
    ("{ce: abc}", "train.loss_weights.ce must be a number"),
    ("3", "train.loss_weights must be"),
])
def test_bad_weights_are_one_line_errors(value, message):
    with pytest.raises(UserError, match=message.replace(".", r"\.")):
        _cfg(f"train.loss_weights={value}")


def test_inconsistent_weights_are_refused():
    from jittor_pranet.engine.multiclass import resolve_loss

    with pytest.raises(UserError, match="bg_bce needs train.loss=dsra"):
        resolve_loss(_cfg("train.loss=baseline", "train.loss_weights={bg_bce: 0.3}"), model_info("emcad_b2"))
    with pytest.raises(UserError, match="every term is 0"):
        resolve_loss(_cfg("train.loss_weights={ce: 0, dice: 0, bg_bce: 0}"), model_info("emcad_b2_dsra"))
