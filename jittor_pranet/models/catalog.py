"""The model catalog: every fact about every built-in model, in one row per model (no Jittor, no torch).

Everything outside the model files asks this module: the registry (``list_models``, ``model_info``,
``build_model``), checkpoint reading (which model, encoder and class count a state_dict holds:
:func:`identify`), the predictor, TTA and config checks (the :class:`InputContract`), the trainers
(the :data:`PREDICTION_RULES`, the default loss, which encoders take ``drop_path_rate``), export,
parity and bench (the PyTorch twin).  A new family is added with its model file(s), its row in
:data:`MODELS` (and, for a new encoder, a row in :data:`ENCODERS`), and its PyTorch twin; see
``docs/adding_a_model.md``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

V1_OUTPUTS = ("lateral_map_5", "lateral_map_4", "lateral_map_3", "lateral_map_2")
V2_OUTPUTS = ("fg2", "fg3", "fg4", "fg5", "bg2", "bg3", "bg4", "bg5")
EMCAD_OUTPUTS = ("p4", "p3", "p2", "p1")
EMCAD_DUAL_OUTPUTS = EMCAD_OUTPUTS + ("p4_bg", "p3_bg", "p2_bg", "p1_bg")
MIST_OUTPUTS = ("p11", "p12", "p13", "p14")                    # deepest first, as the official names
MIST_DUAL_OUTPUTS = MIST_OUTPUTS + ("p11_bg", "p12_bg", "p13_bg", "p14_bg")
MERIT_OUTPUTS = ("p1", "p2", "p3", "p4")                       # deepest first (EMCAD's p4 is its deepest)
MERIT_DUAL_OUTPUTS = MERIT_OUTPUTS + ("p1_bg", "p2_bg", "p3_bg", "p4_bg")


# ------------------------------------------------------------------------------------ input sizes
@dataclass(frozen=True)
class InputContract:
    """The input heights and widths a model accepts.

    ``multiple``: both sides must be positive multiples of it (the encoder's total stride: 32 for
    Res2Net and PVTv2); ``sizes``: when not empty, the only sides accepted (MaxViT's window
    partition fixes them: ``(256,)``); ``square``: height must equal width."""

    multiple: int = 32
    sizes: Tuple[int, ...] = ()
    square: bool = False

    @property
    def dynamic_spatial(self) -> bool:
        """Height and width may change between calls (ONNX export marks them dynamic)."""
        return not self.sizes

    def problem(self, height: int, width: Optional[int] = None) -> Optional[str]:
        """Why ``height x width`` is not accepted (a phrase for an error message), or None."""
        width = height if width is None else width
        if self.square and height != width:
            return f"must be square (height = width), not {height}x{width}"
        for side in (height, width):
            if self.sizes and side not in self.sizes:
                return f"must be {self._sizes_text()}, not {height}x{width}"
            if side < max(self.multiple, 1) or (self.multiple and side % self.multiple):
                return f"must be a positive multiple of {self.multiple}, not {side}"
        return None

    def accepts(self, height: int, width: Optional[int] = None) -> bool:
        return self.problem(height, width) is None

    def describe(self) -> str:
        text = self._sizes_text() if self.sizes else f"a positive multiple of {self.multiple}"
        return text + (", square" if self.square else "")

    def _sizes_text(self) -> str:
        return " or ".join(str(s) for s in self.sizes)


MULTIPLE_OF_32 = InputContract(32)
#: MaxViT models: attention windows of 8 x 8 tokens fixed at construction (256 / 32), square maps
FIXED_256_SQUARE = InputContract(32, (256,), True)


# ------------------------------------------------------------------------------- prediction rules
def _sum(items):
    total = items[0]
    for item in items[1:]:
        total = total + item
    return total


def _fg(outputs):
    return list(outputs)[: len(outputs) // 2]


def _bg(outputs):
    return list(outputs)[len(outputs) // 2:]


#: how the official test (or validation) turns a model's outputs into the logits of its prediction.
#: Works on anything with ``+``/``-`` (Jittor, torch, numpy). Dual models list their foreground outputs
#: first and their background outputs second, in the same stage order.
PREDICTION_RULES: Dict[str, Callable[[Sequence], object]] = {
    "last": lambda outs: list(outs)[-1],                        # PraNet-V1, EMCAD: the finest output
    "sum_fg": lambda outs: _sum(_fg(outs)),                     # PraNet-V2, EMCAD+DSRA
    "sum_fg_minus_bg": lambda outs: _sum(_fg(outs)) - _sum(_bg(outs)),
    "sum_all": lambda outs: _sum(list(outs)),
}


def combine_outputs(rule: str, outputs: Sequence):
    """The logits rule ``rule`` of :data:`PREDICTION_RULES` makes of ``outputs``."""
    try:
        return PREDICTION_RULES[rule](outputs)
    except KeyError:
        raise ValueError(f"unknown prediction rule {rule!r}; choose one of {sorted(PREDICTION_RULES)}") from None


# -------------------------------------------------------------------------------------- encoders
@dataclass(frozen=True)
class EncoderFamily:
    """One encoder family: its variants, where they are built, and how a state_dict reveals which.

    ``builders``: ``"module:attribute"`` of a dict variant name -> constructor;
    ``drop_path``: the constructors take ``drop_path_rate`` (stochastic depth);
    ``identify``: a function (state_dict without prefix, key prefix) -> variant or None."""

    name: str
    variants: Tuple[str, ...]
    builders: str
    drop_path: bool
    identify: Callable[[Mapping[str, object], str], Optional[str]]
    #: a key (without prefix) only this family's state_dicts hold
    marker: str = ""


def _blocks(sd: Mapping[str, object], prefix: str, stage: str) -> int:
    return len({k[len(prefix) + len(stage):].split(".")[0] for k in sd if k.startswith(prefix + stage)})


_PVT_SHAPES = {(32, (2, 2, 2, 2)): "pvt_v2_b0", (64, (2, 2, 2, 2)): "pvt_v2_b1", (64, (3, 4, 6, 3)): "pvt_v2_b2",
               (64, (3, 4, 18, 3)): "pvt_v2_b3", (64, (3, 8, 27, 3)): "pvt_v2_b4", (64, (3, 6, 40, 3)): "pvt_v2_b5"}
_RES2NET_LAYER3_BLOCKS = {6: "res2net50_v1b_26w_4s", 23: "res2net101_v1b_26w_4s"}


def _identify_pvt(sd: Mapping[str, object], prefix: str) -> Optional[str]:
    embed = sd[f"{prefix}patch_embed1.proj.weight"]
    depths = tuple(_blocks(sd, prefix, f"block{i}.") for i in range(1, 5))
    return _PVT_SHAPES.get((int(embed.shape[0]), depths))


def _identify_res2net(sd: Mapping[str, object], prefix: str) -> Optional[str]:
    return _RES2NET_LAYER3_BLOCKS.get(_blocks(sd, prefix, "layer3."))


#: (conv block, stem width 1, stage widths, depths) -> timm name. The mbconv "small" weights serve both
#: input sizes (224 and 256 differ only in the window side, which holds no parameters): the name with
#: ImageNet weights (224) is reported.
_MAXVIT_SHAPES = {
    ("mbconv", 24, (32, 64, 128, 256), (2, 2, 5, 2)): "maxvit_rmlp_pico_rw_256",
    ("mbconv", 32, (64, 128, 256, 512), (1, 2, 3, 1)): "maxvit_rmlp_nano_rw_256",
    ("mbconv", 32, (64, 128, 256, 512), (2, 2, 5, 2)): "maxvit_rmlp_tiny_rw_256",
    ("mbconv", 32, (96, 192, 384, 768), (2, 2, 5, 2)): "maxvit_rmlp_small_rw_224",
    ("convnext", 32, (64, 128, 256, 512), (1, 2, 3, 1)): "maxxvit_rmlp_nano_rw_256",
    ("convnext", 32, (64, 128, 256, 512), (2, 2, 5, 2)): "maxxvit_rmlp_tiny_rw_256",
    ("convnext", 48, (96, 192, 384, 768), (2, 2, 5, 2)): "maxxvit_rmlp_small_rw_256",
}
_MAXVIT_EXTRA = ("maxvit_rmlp_small_rw_256",)  # same weights as the 224 variant, 8x8 windows


#: Cascaded MERIT's second encoder for each first one: the MBConv MaxViT of the same widths (the two
#: passes' features are added). Official: maxxvit_rmlp_small_rw_256 -> maxvit_rmlp_small_rw_224; the
#: smaller pairs run the same code path small.
MERIT_SECOND_ENCODER = {
    "maxxvit_rmlp_small_rw_256": "maxvit_rmlp_small_rw_224",
    "maxxvit_rmlp_tiny_rw_256": "maxvit_rmlp_tiny_rw_256",
    "maxxvit_rmlp_nano_rw_256": "maxvit_rmlp_nano_rw_256",
}


def _identify_maxvit(sd: Mapping[str, object], prefix: str) -> Optional[str]:
    conv = "convnext" if f"{prefix}stages.0.blocks.0.conv.conv_dw.weight" in sd else "mbconv"
    stem = int(sd[f"{prefix}stem.conv1.weight"].shape[0])
    dims = tuple(int(sd[f"{prefix}stages.{i}.blocks.0.attn_block.norm1.weight"].shape[0])
                 for i in range(4) if f"{prefix}stages.{i}.blocks.0.attn_block.norm1.weight" in sd)
    depths = tuple(_blocks(sd, prefix, f"stages.{i}.blocks.") for i in range(4))
    return _MAXVIT_SHAPES.get((conv, stem, dims, depths))


ENCODERS: Tuple[EncoderFamily, ...] = (
    EncoderFamily("pvt_v2", tuple(sorted(set(_PVT_SHAPES.values()))), "jittor_pranet.models.encoders.pvtv2:PVT_VARIANTS",
                  True, _identify_pvt, "patch_embed1.proj.weight"),
    EncoderFamily("res2net", tuple(_RES2NET_LAYER3_BLOCKS.values()),
                  "jittor_pranet.models.encoders.res2net:RES2NET_VARIANTS", False, _identify_res2net,
                  "layer3.0.conv1.weight"),
    EncoderFamily("maxvit", tuple(sorted(set(_MAXVIT_SHAPES.values()) | set(_MAXVIT_EXTRA))),
                  "jittor_pranet.models.encoders.maxvit:MAXVIT_VARIANTS", True, _identify_maxvit,
                  "stages.0.blocks.0.attn_block.attn.qkv.weight"),
)


def encoder_family(variant: Optional[str]) -> Optional[EncoderFamily]:
    """The family an encoder variant belongs to (None for an unknown name)."""
    return next((f for f in ENCODERS if variant in f.variants), None)


def encoder_names() -> Tuple[str, ...]:
    return tuple(v for f in ENCODERS for v in f.variants)


#: where models keep their encoder's weights (tried in this order when reading a state_dict)
ENCODER_PREFIXES = ("backbone.", "resnet.", "backbone1.", "backbone2.", "")


def identify_encoder(state_dict: Mapping[str, object]) -> Optional[str]:
    """The encoder variant a state_dict was made with, from its shapes and block counts (or None)."""
    for prefix in ENCODER_PREFIXES:
        for family in ENCODERS:
            if f"{prefix}{family.marker}" in state_dict:
                return family.identify(state_dict, prefix)
    return None


# ------------------------------------------------------------------------------------ model rows
@dataclass(frozen=True)
class Twin:
    """The PyTorch twin of a model (same state_dict keys, same outputs): ``factory`` is
    ``"module:attribute"`` of the torch class or function; ``kwargs`` is ``"module:attribute"`` of a
    function (spec with ``name``, ``num_classes``, ``encoder``, ``gain``) -> its keyword arguments,
    raising ``UserError`` for what the twin cannot express."""

    factory: str
    kwargs: str


@dataclass(frozen=True)
class ModelInfo:
    """One catalog row: what the rest of the package needs to know about a registered model."""

    name: str
    family: str                        # pranet_v1 | pranet_v2 | emcad | custom
    encoder: str                       # default encoder (``encoder=`` selects another variant)
    outputs: Tuple[str, ...]           # names of the outputs, in the official order (dual: fg..., bg...)
    default_size: int                  # the official training/test input side
    default_num_classes: int
    task: str                          # binary (polyps) | multiclass (organs, cardiac structures)
    dual: bool                         # foreground + background outputs (DSRA): takes ``gain=``
    official_class: str = ""
    # keys only this model's state_dict holds (all of them), to recognise official files without metadata
    signature: Tuple[str, ...] = ()
    head: str = ""                     # a tensor whose first dimension is the number of classes
    config_defaults: Mapping[str, object] = field(default_factory=dict)
    encoders: Tuple[str, ...] = ()     # encoder variants it accepts (empty: every variant of its family)
    input: InputContract = MULTIPLE_OF_32
    in_channels: int = 3               # channels of the official input (1: grayscale slices, 1 -> 3 stem)
    prediction_rule: str = ""          # key of PREDICTION_RULES used at test time (default: sum_fg / last)
    validation_rule: str = ""          # the one used for validation during training (default: prediction)
    loss: str = ""                     # dsra | baseline: the official supervision (default: dsra when dual)
    twin: Optional[Twin] = None        # its PyTorch twin (parity, export, bench)
    encoder_attr: str = "backbone"     # attribute that holds the encoder (its state_dict prefix)
    # attribute of a second ImageNet-initialised encoder (Cascaded MERIT: backbone2, from
    # ``model.backbone2_weights`` / ``convert --backbone2``); "" for one-encoder models
    encoder2_attr: str = ""

    def __post_init__(self):
        if not self.prediction_rule:
            object.__setattr__(self, "prediction_rule", "sum_fg" if self.dual else "last")
        if not self.validation_rule:
            object.__setattr__(self, "validation_rule", self.prediction_rule)
        if not self.loss:
            object.__setattr__(self, "loss", "dsra" if self.dual else "baseline")
        if not self.encoders and encoder_family(self.encoder) is not None:
            object.__setattr__(self, "encoders", encoder_family(self.encoder).variants)
        for rule in (self.prediction_rule, self.validation_rule):
            if rule not in PREDICTION_RULES:
                raise ValueError(f"{self.name}: unknown prediction rule {rule!r} ({sorted(PREDICTION_RULES)})")

    @property
    def encoder_family(self) -> str:
        """``pvt`` or ``res2net`` (the short names used before the catalog), else the family name."""
        fam = encoder_family(self.encoder)
        if fam is None:
            return ""
        return "pvt" if fam.name == "pvt_v2" else fam.name

    @property
    def prediction(self) -> str:
        """How the official test turns outputs into the predicted map (a key of PREDICTION_RULES)."""
        return self.prediction_rule

    @property
    def fg_outputs(self) -> Tuple[str, ...]:
        """The foreground outputs (all of them for single models)."""
        return self.outputs[: len(self.outputs) // 2] if self.dual else self.outputs

    def takes_drop_path(self, encoder: Optional[str] = None) -> bool:
        """Whether its constructor takes ``drop_path_rate`` with this encoder (default: its own)."""
        fam = encoder_family(encoder or self.encoder)
        return bool(fam and fam.drop_path)

    def predict(self, outputs: Sequence):
        return combine_outputs(self.prediction_rule, outputs)

    def validate(self, outputs: Sequence):
        return combine_outputs(self.validation_rule, outputs)


ModelFacts = ModelInfo  # the catalog row's other name

_TM = "jittor_pranet.reference.torch_models"
_TE = "jittor_pranet.reference.torch_emcad"
_TW = "jittor_pranet.reference.twins"
_TMI = "jittor_pranet.reference.torch_mist"
_TME = "jittor_pranet.reference.torch_merit"
_MAXXVIT = "maxxvit_rmlp_small_rw_256"
_RES2NET, _PVT = "res2net50_v1b_26w_4s", "pvt_v2_b2"

MODELS: Tuple[ModelInfo, ...] = (
    ModelInfo("pranet_v1_res2net", "pranet_v1", _RES2NET, V1_OUTPUTS, 352, 1, "binary", False, "PraNet",
              ("resnet.conv1.0.weight", "ra2_conv4.conv.weight"), "ra2_conv4.conv.weight",
              prediction_rule="last", loss="baseline", encoder_attr="resnet",
              twin=Twin(f"{_TM}:PraNetV1Res2Net", f"{_TW}:pranet_v1_res2net")),
    ModelInfo("pranet_v1_pvt", "pranet_v1", _PVT, V1_OUTPUTS, 352, 1, "binary", False, "PVT_PraNet",
              ("backbone.patch_embed1.proj.weight", "ra2_conv4.conv.weight"), "ra2_conv4.conv.weight",
              prediction_rule="last", loss="baseline", twin=Twin(f"{_TM}:PraNetV1PVT", f"{_TW}:pranet_v1_pvt")),
    ModelInfo("pranet_v2_res2net", "pranet_v2", _RES2NET, V2_OUTPUTS, 352, 1, "binary", True, "PraNet_V2",
              ("backbone.conv1.0.weight", "agg1.conv5_fg.weight"), "agg1.conv5_fg.weight",
              prediction_rule="sum_fg", loss="dsra",
              twin=Twin(f"{_TM}:PraNetV2Res2Net", f"{_TW}:pranet_v2_res2net")),
    ModelInfo("pranet_v2_pvt", "pranet_v2", _PVT, V2_OUTPUTS, 352, 1, "binary", True, "PVT_PraNet_V2",
              ("backbone.patch_embed1.proj.weight", "agg1.conv5_fg.weight"), "agg1.conv5_fg.weight",
              prediction_rule="sum_fg", loss="dsra", twin=Twin(f"{_TM}:PraNetV2PVT", f"{_TW}:pranet_v2_pvt")),
    ModelInfo("emcad_b2", "emcad", _PVT, EMCAD_OUTPUTS, 224, 9, "multiclass", False, "EMCADNet",
              ("out_head4.weight",), "out_head1.weight",
              in_channels=1, prediction_rule="last", loss="baseline",
              twin=Twin(f"{_TE}:EMCADNet", f"{_TW}:emcad_b2")),
    ModelInfo("emcad_b2_dsra", "emcad", _PVT, EMCAD_DUAL_OUTPUTS, 224, 9, "multiclass", True, "EMCADNet (dual)",
              ("out_head4.weight", "decoder.ConvBlock4_fg.conv.weight"), "decoder.ConvBlock1_fg.conv.weight",
              in_channels=1, prediction_rule="sum_fg", loss="dsra",
              twin=Twin(f"{_TE}:EMCADNet", f"{_TW}:emcad_b2_dsra")),
    ModelInfo("mist", "mist", _MAXXVIT, MIST_OUTPUTS, 256, 9, "multiclass", False, "MIST_CAM",
              ("backbone1.stem.conv1.weight", "decoder.block_5.conv1.weight"), "out_head1.weight",
              input=FIXED_256_SQUARE, in_channels=1, prediction_rule="sum_all", loss="baseline",
              encoder_attr="backbone1", twin=Twin(f"{_TMI}:MISTNet", f"{_TW}:mist")),
    ModelInfo("mist_dsra", "mist", _MAXXVIT, MIST_DUAL_OUTPUTS, 256, 9, "multiclass", True, "MIST_CAM (dual)",
              ("backbone1.stem.conv1.weight", "decoder.block_5.conv1.weight", "decoder.out_head1_fg.weight"),
              "decoder.out_head1_fg.weight",
              input=FIXED_256_SQUARE, in_channels=1, prediction_rule="sum_fg", loss="dsra",
              encoder_attr="backbone1", twin=Twin(f"{_TMI}:MISTNet", f"{_TW}:mist_dsra")),
    ModelInfo("merit_cascaded", "merit", _MAXXVIT, MERIT_OUTPUTS, 256, 9, "multiclass", False, "MERIT_Cascaded",
              ("backbone2.stem.conv1.weight", "out_head4_in.weight"), "out_head1.weight",
              encoders=tuple(MERIT_SECOND_ENCODER), input=FIXED_256_SQUARE, in_channels=1,
              prediction_rule="sum_all", loss="baseline", encoder_attr="backbone1", encoder2_attr="backbone2",
              twin=Twin(f"{_TME}:MERITNet", f"{_TW}:merit_cascaded")),
    ModelInfo("merit_cascaded_dsra", "merit", _MAXXVIT, MERIT_DUAL_OUTPUTS, 256, 9, "multiclass", True,
              "MERIT_Cascaded_dual",
              ("backbone2.stem.conv1.weight", "out_head4_in.weight", "decoder.ConvBlock4_fg.conv.weight"),
              "decoder.ConvBlock1_fg.conv.weight",
              encoders=tuple(MERIT_SECOND_ENCODER), input=FIXED_256_SQUARE, in_channels=1,
              prediction_rule="sum_fg_minus_bg", loss="dsra", encoder_attr="backbone1", encoder2_attr="backbone2",
              twin=Twin(f"{_TME}:MERITNet", f"{_TW}:merit_cascaded_dsra")),
)

#: where the built-in constructors are registered (imported by ``build_model`` on first use)
CONSTRUCTOR_MODULE = "jittor_pranet.models.zoo"


def row(name: str) -> Optional[ModelInfo]:
    return next((m for m in MODELS if m.name == name), None)


# ------------------------------------------------------------------------------- identification
def recognise(state_dict: Mapping[str, object], rows: Sequence[ModelInfo] = MODELS) -> Optional[str]:
    """The model whose signature keys a state_dict holds (the most specific match), or None."""
    matches = [i for i in rows if i.signature and all(k in state_dict for k in i.signature)]
    if not matches:
        return None
    best = max(len(i.signature) for i in matches)
    top = [i.name for i in matches if len(i.signature) == best]
    return top[0] if len(top) == 1 else None


def head_classes(info: ModelInfo, state_dict: Mapping[str, object]) -> Optional[int]:
    """The number of classes a state_dict of this model was trained for, from its head's shape."""
    value = state_dict.get(info.head) if info.head else None
    return int(value.shape[0]) if value is not None and getattr(value, "ndim", 0) >= 1 else None


def any_head_classes(state_dict: Mapping[str, object], rows: Sequence[ModelInfo] = MODELS) -> Optional[int]:
    """Classes read from any known head, also under a key prefix (for files no row recognises)."""
    for head in dict.fromkeys(i.head for i in rows if i.head):
        for key, value in state_dict.items():
            if key.endswith(head) and getattr(value, "ndim", 0) >= 1:
                return int(value.shape[0])
    return None


def identify(state_dict: Mapping[str, object], rows: Sequence[ModelInfo] = MODELS
             ) -> Tuple[Optional[str], Optional[str], Optional[int]]:
    """``(model, encoder, classes)`` a state_dict holds, each None when its keys do not say."""
    name = recognise(state_dict, rows)
    info = next((i for i in rows if i.name == name), None)
    classes = head_classes(info, state_dict) if info is not None else None
    if classes is None:
        classes = any_head_classes(state_dict, rows)
    return name, identify_encoder(state_dict), classes


__all__ = ["ENCODERS", "EMCAD_DUAL_OUTPUTS", "EMCAD_OUTPUTS", "FIXED_256_SQUARE", "MERIT_DUAL_OUTPUTS", "MERIT_SECOND_ENCODER",
           "MERIT_OUTPUTS", "MIST_DUAL_OUTPUTS", "MIST_OUTPUTS", "EncoderFamily", "InputContract", "MODELS",
           "ModelFacts", "ModelInfo", "PREDICTION_RULES", "Twin", "V1_OUTPUTS", "V2_OUTPUTS", "combine_outputs",
           "encoder_family", "encoder_names", "identify", "identify_encoder", "recognise", "row"]
