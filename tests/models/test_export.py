"""ONNX export through the PyTorch twin: every registered model exported and checked against Jittor
within 1e-4 (onnxruntime, CPU) at a small input, dynamic batch and spatial size, the check able to fail,
bad arguments one ``error:`` line with nothing written."""
from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from conftest import one_error_line, run_cli  # noqa: E402

from jittor_pranet.errors import UserError  # noqa: E402

SIZE = 64
#: smallest encoder of each family (the export path does not depend on the variant)
ENCODERS = {"pranet_v1_res2net": "res2net50_v1b_26w_4s", "pranet_v2_res2net": "res2net50_v1b_26w_4s",
            "pranet_v1_pvt": "pvt_v2_b0", "pranet_v2_pvt": "pvt_v2_b0", "emcad_b2": "pvt_v2_b0",
            "emcad_b2_dsra": "pvt_v2_b0"}


def _checkpoint(folder, name, num_classes=1, seed=0):
    """Random weights (BatchNorm statistics included) from the reference model, saved as our checkpoint."""
    from jittor_pranet.checkpoint import save_checkpoint
    from jittor_pranet.reference import torch_emcad as te
    from jittor_pranet.reference import torch_models as tm

    encoder = ENCODERS[name]
    if name in te.TORCH_EMCAD:
        torch_model = te.build_torch_emcad(name, num_classes=num_classes, encoder=encoder)
    else:
        kw = {"pvt_variant": encoder.rsplit("_", 1)[-1]} if encoder.startswith("pvt") else {}
        torch_model = tm.build_torch_model(name, num_classes=num_classes, **kw)
    model = tm.randomize_(torch_model, seed)
    path = folder / f"{name}_{num_classes}.pkl"
    save_checkpoint(tm.state_dict_numpy(model), path,
                    meta={"model": name, "num_classes": num_classes, "encoder": encoder})
    return path


def test_every_registered_model_has_a_reference():
    from jittor_pranet.export import REFERENCE_MODELS, reference_entry
    from jittor_pranet.models import list_models

    missing = sorted(set(list_models()) - set(REFERENCE_MODELS))
    assert not missing, f"add these models to jittor_pranet.export.REFERENCE_MODELS: {missing}"
    with pytest.raises(UserError, match="no PyTorch reference"):
        reference_entry("no_such_model")


@pytest.mark.parametrize("name,num_classes", [("pranet_v1_res2net", 1), ("pranet_v1_pvt", 1),
                                              ("pranet_v2_res2net", 1), ("pranet_v2_pvt", 3),
                                              ("emcad_b2", 4), ("emcad_b2_dsra", 4)])
def test_export_matches_jittor(tmp_path, name, num_classes):
    import onnx

    from jittor_pranet.export import export_onnx

    ckpt = _checkpoint(tmp_path, name, num_classes)
    out = tmp_path / f"{name}.onnx"
    report = export_onnx(ckpt, out, size=SIZE, batch=2, log=lambda line: None)
    assert out.is_file() and report.passed
    from jittor_pranet.export import REFERENCE_MODELS
    from jittor_pranet.models import model_info

    n_out, c = len(model_info(name).outputs), REFERENCE_MODELS[name].in_channels
    shapes = {r.input_shape for r in report.rows}
    assert shapes == {(2, c, SIZE, SIZE), (1, c, SIZE + 32, SIZE - 32)}  # dynamic batch, height and width
    assert len(report.rows) == 2 * n_out and report.worst <= 1e-4
    assert all(r.ref_max > 0 for r in report.rows)
    graph = onnx.load(str(out)).graph
    dims = [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "", "height", "width"]
    assert len(graph.output) == n_out
    assert graph.output[0].type.tensor_type.shape.dim[1].dim_value == num_classes


def test_check_can_fail_and_then_writes_nothing(tmp_path):
    from jittor_pranet.export import export_onnx

    ckpt = _checkpoint(tmp_path, "pranet_v2_pvt")
    out = tmp_path / "m.onnx"
    with pytest.raises(UserError, match="was not written"):
        export_onnx(ckpt, out, size=SIZE, tolerance=1e-12, log=lambda line: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == [ckpt.name]


def test_cli_export_and_bad_arguments(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path, "pranet_v2_pvt")
    code, out, err = run_cli(["export", "--format", "onnx", ckpt, tmp_path / "ok.onnx", "--size", SIZE], capsys)
    assert code == 0, err
    assert "| fg2 |" in out and "wrote" in out and (tmp_path / "ok.onnx").is_file()
    for target, needle in ((tmp_path / "missing" / "m.onnx", "does not exist"), (tmp_path / "m.txt", ".onnx"),
                           (tmp_path / "dir.onnx", "is a folder")):
        if target.name == "dir.onnx":
            target.mkdir()
        code, _, err = run_cli(["export", ckpt, target, "--size", SIZE], capsys)
        assert code == 2 and needle in one_error_line(err)
    code, _, err = run_cli(["export", tmp_path / "none.pkl", tmp_path / "x.onnx"], capsys)
    assert code == 2 and one_error_line(err)
    code, _, err = run_cli(["export", ckpt, tmp_path / "x.onnx", "--size", 50], capsys)
    assert code == 2 and "multiple of 32" in one_error_line(err)
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == sorted([ckpt.name, "ok.onnx", "dir.onnx"])
