"""Evaluation on top of :mod:`jittor_pranet.metrics` (pure math): whole folders of predicted maps
against ground truth (:mod:`.maps`, the polyp protocol) and multi-class volumes (:mod:`.volumes`:
slice-wise prediction stacked per case, per-class Dice / IoU / HD95, tables and overlays).

``from jittor_pranet.evaluation import evaluate_folders`` keeps working: the folder API is re-exported
here; the volume API is imported from :mod:`jittor_pranet.evaluation.volumes` (it needs scipy).
"""
from .maps import (
                   IMAGE_EXTENSIONS,
                   EvaluationReport,
                   Pairing,
                   SetResult,
                   discover_sets,
                   evaluate_folders,
                   evaluate_folders_detailed,
                   evaluate_pairs,
                   index_images,
                   pair_folders,
                   read_gray,
)

__all__ = ["EvaluationReport", "IMAGE_EXTENSIONS", "Pairing", "SetResult", "discover_sets", "evaluate_folders",
           "evaluate_folders_detailed", "evaluate_pairs", "index_images", "pair_folders", "read_gray"]
