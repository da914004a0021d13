"""Model zoo: encoders, decoder blocks, DSRA, the four PraNet models and EMCAD(+DSRA).

The registry (names, facts, ``build_model``) imports no Jittor; the model classes below are loaded
on first use, so ``from jittor_pranet.models import list_models`` stays cheap.
"""
from .registry import ModelInfo, build_model, list_models, model_info, prediction_logits, register_model

_LAZY = {
    "DSRA": ".decoders.dsra", "GAIN_MODES": ".decoders.dsra", "dsra_fuse": ".decoders.dsra",
    "reverse_gain": ".decoders.dsra",
    "EMCADNet": ".emcad", "emcad_prediction_logits": ".emcad",
    "PraNetV1": ".pranet", "PraNetV2": ".pranet", "build_encoder": ".encoders",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["build_model", "list_models", "register_model", "model_info", "ModelInfo", "prediction_logits", *_LAZY]
