"""The registry carries each model's facts; listing and validating need no Jittor, and nothing else in
the package recovers facts from model names."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "jittor_pranet"


def test_listing_models_and_validating_a_config_import_no_jittor():
    code = ("import sys\n"
            "from jittor_pranet.models.registry import list_models, model_info\n"
            "from jittor_pranet.config import load_config\n"
            "cfg = load_config(None, ['model.name=emcad_b2_dsra', 'task=multiclass'])\n"
            "assert 'emcad_b2_dsra' in list_models() and model_info('emcad_b2_dsra').dual\n"
            "assert 'jittor' not in sys.modules, sorted(m for m in sys.modules if 'jittor' in m)\n"
            "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]


def test_facts_match_the_models():
    from jittor_pranet import build_model
    from jittor_pranet.models.registry import list_models, model_info

    assert set(list_models()) >= {"pranet_v1_res2net", "pranet_v1_pvt", "pranet_v2_res2net", "pranet_v2_pvt",
                                  "emcad_b2", "emcad_b2_dsra"}
    for name in ("pranet_v2_pvt", "emcad_b2_dsra", "pranet_v1_pvt"):
        info = model_info(name)
        enc = "pvt_v2_b0"
        model = build_model(name, encoder=enc)
        keys = set(model.state_dict())
        assert all(k in keys for k in info.signature), name
        head = model.state_dict()[info.head]
        assert head.shape[0] == info.default_num_classes, name


@pytest.mark.parametrize("name", ["pranet_v1_pvt", "pranet_v2_pvt", "emcad_b2", "emcad_b2_dsra"])
def test_official_files_are_recognised_from_their_keys(name):
    from jittor_pranet import build_model
    from jittor_pranet.checkpoint import model_numpy_state_dict
    from jittor_pranet.models.registry import head_classes, recognise_model

    classes = 1 if name == "pranet_v1_pvt" else 4  # PraNet-V1 is binary only
    sd = model_numpy_state_dict(build_model(name, num_classes=classes, encoder="pvt_v2_b0"))
    assert recognise_model(sd) == name
    assert head_classes(name, sd) == classes


#: model facts re-derived from names, output counts or the input stride, instead of asked of the catalog
FACT_GUESSES = re.compile(r"startswith\(.(pranet_v|emcad|pvt|res2net|maxvit)|endswith\(.pvt"
                          r"|len\((outputs|outs|out|heads|names)\) *[=!]= *\d|% *32\b|\b32 *\*|encoder_family *==")


def fact_guesses(root: Path = PACKAGE):
    return [f"{p.relative_to(root)}:{i}" for p in sorted(root.rglob("*.py")) if p.name != "catalog.py"
            for i, line in enumerate(p.read_text().splitlines(), 1) if FACT_GUESSES.search(line)]


def test_the_guard_sees_guesses():
    """Each kind of guess the guard exists for is caught (a guard that matches nothing proves nothing)."""
    for line in ('if encoder.startswith("pvt"):', "x = 'res2net' if n.startswith('res2net') else 1",
                 "dual = len(outputs) == 8", "if size % 32:", "if h %32 or w % 32:", "if len(outs) != 4:",
                 'if info.encoder_family == "pvt":'):
        assert FACT_GUESSES.search(line), line
    for line in ("n = len(outputs)", "size = 352", "x % 3", "round(size * rate / 32)"):
        assert not FACT_GUESSES.search(line), line


def test_no_model_facts_parsed_from_names_outside_the_catalog():
    offenders = fact_guesses()
    assert not offenders, f"ask jittor_pranet.models.catalog instead: {offenders}"
