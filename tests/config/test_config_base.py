"""Config files starting from others (``_base_``): the shipped recipes resolve exactly as recorded, the
merge order, and one-line errors for cycles and missing files."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from jittor_pranet.cli.common import read_config
from jittor_pranet.config import load_config, read_config_file
from jittor_pranet.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = ROOT / "tests" / "fixtures" / "resolved_configs.json"


def _shipped():
    return sorted((ROOT / "configs").glob("*.yaml")) + sorted((ROOT / "jittor_pranet" / "configs").glob("*.yaml"))


def test_every_shipped_config_resolves_as_recorded():
    """Sharing a recipe through ``_base_`` files changes no value (tools/snapshot_configs.py wrote the
    snapshot from the self-contained files), neither of the full config nor of what inference picks."""
    recorded = json.loads(SNAPSHOT.read_text())
    names = [str(p.relative_to(ROOT)) for p in _shipped()]
    assert sorted(recorded) == sorted(names), "a config was added or removed: run tools/snapshot_configs.py"
    for path, name in zip(_shipped(), names):
        got = json.loads(json.dumps({"config": load_config(str(path)), "inference": read_config(str(path))}))
        assert got == recorded[name], name
    with_base = [n for n in names if "_base_" in yaml.safe_load((ROOT / n).read_text())]
    assert {"configs/emcad_b2_dsra_synapse.yaml", "configs/emcad_b2_synapse.yaml", "configs/emcad_b2_dsra_acdc.yaml",
            "configs/emcad_b2_kits19.yaml", "configs/emcad_b2_dsra_kits19.yaml", "configs/mist_kits19.yaml",
            "configs/mist_dsra_kits19.yaml", "configs/pranet_v2_pvt_acdc.yaml"} <= set(with_base)


def _write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def test_bases_merge_in_order_and_the_file_wins(tmp_path):
    _write(tmp_path / "b" / "root.yaml", {"train": {"epochs": 3, "lr": 0.5, "seed": 1}, "data": {"augment": {"hflip": 0.5}}})
    _write(tmp_path / "b" / "one.yaml", {"_base_": "root.yaml", "train": {"epochs": 4, "batch_size": 2}})  # relative to b/
    _write(tmp_path / "b" / "two.yaml", {"train": {"epochs": 5, "seed": 2}, "data": {"augment": {"vflip": 0.25}}})
    top = _write(tmp_path / "exp.yaml", {"_base_": ["b/one.yaml", "b/two.yaml"], "train": {"seed": 9}})
    cfg = load_config(str(top))
    t = cfg["train"]
    assert (t["epochs"], t["lr"], t["batch_size"], t["seed"]) == (5, 0.5, 2, 9)
    assert cfg["data"]["augment"] == {"vflip": 0.25}  # a mapping-valued option is replaced whole, as by key=value
    assert "_base_" not in cfg and "_base_" not in read_config_file(str(top))
    assert read_config_file(str(top))["train"] == {"epochs": 5, "lr": 0.5, "seed": 9, "batch_size": 2}
    assert load_config(str(top), ["train.epochs=7"])["train"]["epochs"] == 7  # the command line wins over all


def test_the_saved_config_is_the_merged_one(tmp_path):
    from jittor_pranet.engine.run_report import save_run_config

    src = ROOT / "configs" / "emcad_b2_dsra_synapse.yaml"
    cfg = load_config(str(src))
    save_run_config(cfg, tmp_path / "config.yaml")
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert "_base_" not in saved and saved["train"]["optimizer"] == "adamw" and saved["model"]["num_classes"] == 9
    assert load_config(str(tmp_path / "config.yaml")) == cfg  # --resume reads it back unchanged


def test_inference_picks_what_the_bases_set(tmp_path):
    _write(tmp_path / "base.yaml", {"model": {"name": "emcad_b2", "num_classes": 4}, "data": {"train_size": 224}})
    top = _write(tmp_path / "exp.yaml", {"_base_": "base.yaml", "model": {"num_classes": 3}})
    assert read_config(str(top)) == {"model": {"name": "emcad_b2", "num_classes": 3}, "data": {"train_size": 224}}


@pytest.mark.parametrize("case", ["self", "pair", "missing", "type", "unknown_key"])
def test_bad_bases_are_one_line_errors(tmp_path, case):
    if case == "self":
        top = _write(tmp_path / "a.yaml", {"_base_": "a.yaml"})
        pattern = r"_base_ makes a cycle: .*a\.yaml -> .*a\.yaml"
    elif case == "pair":
        _write(tmp_path / "b.yaml", {"_base_": "a.yaml", "train": {"epochs": 2}})
        top = _write(tmp_path / "a.yaml", {"_base_": ["b.yaml"]})
        pattern = r"b\.yaml: _base_ makes a cycle: .*a\.yaml -> .*b\.yaml -> .*a\.yaml"
    elif case == "missing":
        top = _write(tmp_path / "a.yaml", {"_base_": "nope/base.yaml"})
        pattern = r"a\.yaml: _base_ 'nope/base\.yaml': .*nope/base\.yaml: config file not found"
    elif case == "type":
        top = _write(tmp_path / "a.yaml", {"_base_": {"x": 1}})
        pattern = r"a\.yaml: _base_ must be a file name or a list of file names"
    else:
        _write(tmp_path / "base.yaml", {"train": {"epochz": 2}})
        top = _write(tmp_path / "a.yaml", {"_base_": "base.yaml"})
        pattern = r"base\.yaml: unknown config key 'train\.epochz'; did you mean 'train\.epochs'\?"
    with pytest.raises(UserError, match=pattern) as err:
        load_config(str(top))
    assert "\n" not in str(err.value)


def test_mapping_options_load_from_a_file(tmp_path):
    """``data.augment`` / ``train.loss_weights`` as mappings in a file (and so in a saved run config that
    ``--resume`` reads back) are options, not sections of unknown keys."""
    top = _write(tmp_path / "a.yaml", {"task": "multiclass", "model": {"name": "emcad_b2_dsra"},
                                       "data": {"augment": {"hflip": 0.5}}, "train": {"loss_weights": {"ce": 1.0}}})
    cfg = load_config(str(top))
    assert cfg["data"]["augment"] == {"hflip": 0.5} and cfg["train"]["loss_weights"] == {"ce": 1.0}
    with pytest.raises(UserError, match="unknown option data.augment.hflp"):
        load_config(str(_write(tmp_path / "b.yaml", {"data": {"augment": {"hflp": 0.5}}})))


def test_validating_a_config_with_bases_imports_no_jittor():
    code = ("import sys\n"
            "from jittor_pranet.config import load_config\n"
            f"cfg = load_config({str(ROOT / 'configs' / 'emcad_b2_dsra_acdc.yaml')!r})\n"
            "assert cfg['train']['epochs'] == 150 and cfg['model']['num_classes'] == 4\n"
            "assert 'jittor' not in sys.modules, sorted(m for m in sys.modules if 'jittor' in m)\n"
            "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]
