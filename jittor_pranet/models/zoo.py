"""The registered constructors (facts about each model live in :mod:`.registry`)."""
from .emcad import EMCADNet
from .merit import MERITNet
from .mist import MISTNet
from .pranet import PraNetV1, PraNetV2
from .registry import register_model


@register_model
def pranet_v1_res2net(num_classes: int = 1, encoder: str = "res2net50_v1b_26w_4s", **kw) -> PraNetV1:
    """PraNet-V1 on Res2Net-50-v1b-26w-4s (official ``PraNet``)."""
    return PraNetV1(encoder=encoder, num_classes=num_classes, **kw)


@register_model
def pranet_v1_pvt(num_classes: int = 1, encoder: str = "pvt_v2_b2", **kw) -> PraNetV1:
    """PraNet-V1 on PVTv2-B2 (official ``PVT_PraNet``)."""
    return PraNetV1(encoder=encoder, num_classes=num_classes, **kw)


@register_model
def pranet_v2_res2net(num_classes: int = 1, encoder: str = "res2net50_v1b_26w_4s", **kw) -> PraNetV2:
    """PraNet-V2 (DSRA) on Res2Net-50-v1b-26w-4s (official ``PraNet_V2``)."""
    return PraNetV2(encoder=encoder, num_classes=num_classes, **kw)


@register_model
def pranet_v2_pvt(num_classes: int = 1, encoder: str = "pvt_v2_b2", **kw) -> PraNetV2:
    """PraNet-V2 (DSRA) on PVTv2-B2 (official ``PVT_PraNet_V2``)."""
    return PraNetV2(encoder=encoder, num_classes=num_classes, **kw)


@register_model
def emcad_b2(num_classes: int = 9, encoder: str = "pvt_v2_b2", **kw) -> EMCADNet:
    """EMCAD decoder on PVTv2-B2 (official ``EMCADNet``, training-script hyper-parameters)."""
    return EMCADNet(num_classes=num_classes, encoder=encoder, dual=False, **kw)


@register_model
def emcad_b2_dsra(num_classes: int = 9, encoder: str = "pvt_v2_b2", **kw) -> EMCADNet:
    """EMCAD-B2 with PraNet-V2's DSRA fg/bg heads per stage (official ``EMCADNet(dual=True)``)."""
    return EMCADNet(num_classes=num_classes, encoder=encoder, dual=True, **kw)


@register_model
def mist(num_classes: int = 9, encoder: str = "maxxvit_rmlp_small_rw_256", **kw) -> MISTNet:
    """MIST: MaxxViT encoder and the CAM attention decoder (official ``MIST_CAM``)."""
    return MISTNet(num_classes=num_classes, encoder=encoder, dual=False, **kw)


@register_model
def mist_dsra(num_classes: int = 9, encoder: str = "maxxvit_rmlp_small_rw_256", **kw) -> MISTNet:
    """MIST with PraNet-V2's DSRA fg/bg heads per decoder stage (official ``MIST_CAM(dual=True)``)."""
    return MISTNet(num_classes=num_classes, encoder=encoder, dual=True, **kw)


@register_model
def merit_cascaded(num_classes: int = 9, encoder: str = "maxxvit_rmlp_small_rw_256", **kw) -> MERITNet:
    """Cascaded MERIT: two MaxViT passes (256, then 224 on the feedback-masked input), CASCADE decoder
    (official ``MERIT_Cascaded``)."""
    return MERITNet(num_classes=num_classes, encoder=encoder, dual=False, **kw)


@register_model
def merit_cascaded_dsra(num_classes: int = 9, encoder: str = "maxxvit_rmlp_small_rw_256", **kw) -> MERITNet:
    """Cascaded MERIT with PraNet-V2's DSRA fg/bg heads per stage (official ``MERIT_Cascaded_dual``)."""
    return MERITNet(num_classes=num_classes, encoder=encoder, dual=True, **kw)
