"""The choices of config keys come from the code that acts on them, read without importing Jittor, and
config.py holds no copy of them."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from jittor_pranet import config
from jittor_pranet.config import SCHEMA, declared, load_config
from jittor_pranet.errors import UserError

CONFIG_SOURCE = Path(config.__file__).read_text(encoding="utf-8")
#: choices config.py itself defines (the vocabulary of its own ``task`` key)
OWN = {"TASKS"}


def _definers():
    from jittor_pranet.data.datasets import SIZE_MISMATCH_POLICIES
    from jittor_pranet.data.multiclass import LABEL_REMAP_CHOICES, LABEL_REMAPS
    from jittor_pranet.data.multiclass_layouts import FORMATS, IMAGE_CHANNELS, LAYOUTS
    from jittor_pranet.engine.optim import OPTIMIZERS
    from jittor_pranet.losses import LOSS_KINDS
    from jittor_pranet.losses.multiclass import SUPERVISIONS
    from jittor_pranet.metrics.hausdorff import HD95_CONVENTIONS
    from jittor_pranet.models.decoders.dsra import GAIN_MODES

    assert FORMATS == ("auto", *LAYOUTS) and LABEL_REMAP_CHOICES == ("auto", "none", *LABEL_REMAPS)
    return {"model.gain": GAIN_MODES, "data.on_size_mismatch": SIZE_MISMATCH_POLICIES, "data.format": FORMATS,
            "data.label_remap": LABEL_REMAP_CHOICES, "data.channels": IMAGE_CHANNELS,
            "train.optimizer": tuple(OPTIMIZERS), "train.loss": LOSS_KINDS, "train.supervision": SUPERVISIONS,
            "output.hd95_convention": HD95_CONVENTIONS}


def test_choices_are_those_of_the_code():
    """What the source declares is what the imported modules hold (the modules import Jittor here)."""
    definers = _definers()
    choice_keys = {k for k, c in SCHEMA.items() if c.kind == "choice"}
    assert choice_keys == set(definers) | {"task"}
    for key, values in definers.items():
        assert SCHEMA[key].choices == tuple(values), key
    with pytest.raises(UserError, match=r"model\.gain must be one of softmax, sigmoid, difference, not 'soft'"):
        load_config(None, ["model.gain=soft"])


def copied_choices(source: str, choices) -> list:
    """Lines of ``source`` (config.py) holding a choice list by value instead of asking its definer:
    a ``Check("choice", choices=<literal>)``, a module constant bound to a literal list of names (other
    than :data:`OWN`), or any literal tuple/list/set equal to one of ``choices``."""
    found = []
    known = {frozenset(c) for c in choices}
    tree = ast.parse(source)
    literal = (ast.Tuple, ast.List, ast.Set)

    def pure(node):
        return isinstance(node, literal) and node.elts and all(isinstance(e, ast.Constant) for e in node.elts)

    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and pure(node.value):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = {t.id for t in targets if isinstance(t, ast.Name)}
            if not names <= OWN and all(isinstance(e.value, str) for e in node.value.elts):
                found.append(f"{node.lineno}: {sorted(names)} is a literal list")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Check":
            for kw in node.keywords:
                if kw.arg == "choices" and pure(kw.value):
                    found.append(f"{node.lineno}: Check(choices=<literal>)")
        if pure(node) and frozenset(e.value for e in node.elts) in known:
            found.append(f"{node.lineno}: a copy of {sorted(e.value for e in node.elts)}")
    return found


def test_config_py_copies_no_choice_list():
    derived = [c.choices for k, c in SCHEMA.items() if c.kind == "choice" and k != "task"]
    assert not copied_choices(CONFIG_SOURCE, derived)
    # the guard sees each way of copying a list back
    copies = ('GAINS = ("softmax", "sigmoid", "difference")\n'
              'S = {"train.loss": Check("choice", choices=("auto", "dsra"))}\n'
              'def f(x):\n    return x in ["adamw", "adam"]\n')
    assert [line.split(":")[0] for line in copied_choices(copies, derived)] == ["1", "1", "2", "4"]


def test_declared_reads_literals_only():
    assert declared("jittor_pranet.engine.optim", "OPTIMIZERS") == ("adam", "adamw")  # a dict's keys
    assert declared("jittor_pranet.data.multiclass_layouts", "FORMATS")[0] == "auto"  # *LAYOUTS spliced in
    with pytest.raises(LookupError, match="not a tuple, list or dict of literals"):
        declared("jittor_pranet.models.catalog", "MODELS")
    with pytest.raises(LookupError, match="declares no constant"):
        declared("jittor_pranet.losses", "NO_SUCH_NAME")


def test_validating_every_choice_imports_no_jittor():
    overrides = ["task=multiclass", "model.name=emcad_b2_dsra", "model.gain=sigmoid", "data.on_size_mismatch=drop",
                 "data.format=acdc_h5", "data.label_remap=none", "data.channels=3", "train.optimizer=adamw",
                 "train.loss=dsra", "train.supervision=last_layer", "output.hd95_convention=monai"]
    code = ("import sys\n"
            "from jittor_pranet.config import load_config\n"
            f"cfg = load_config(None, {overrides!r})\n"
            "assert cfg['model']['gain'] == 'sigmoid' and cfg['train']['supervision'] == 'last_layer'\n"
            "assert 'jittor' not in sys.modules, sorted(m for m in sys.modules if 'jittor' in m)\n"
            "assert not any(m.startswith(('jittor_pranet.losses', 'jittor_pranet.engine', 'jittor_pranet.models.decoders'))"
            " for m in sys.modules)\n"
            "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]
