"""The old home of inference, kept so that its imports keep working: the code now lives by job in
:mod:`.model_spec` (checkpoint -> model), :mod:`.precision`, :mod:`.predictor` (the official test-time
protocol, :class:`Predictor`), :mod:`.outputs` (files written per image) and :mod:`.testsets` (polyp
test sets)."""
from .model_spec import ModelSpec, load_model, resolve_model_spec
from .outputs import ImageJob, OutputOptions, PredictSummary, predict_files, prepare_output_folder, write_prediction
from .precision import PRECISIONS, cast_model, model_dtype, precision_dtype
from .predictor import (
    DEFAULT_SIZE,
    MINMAX_EPS,
    Predictor,
    Size,
    binary_mask,
    label_map,
    minmax_normalize,
    to_uint8_map,
)
from .testsets import TestSetPlan, plan_test_sets, predict_test_sets, run_test_sets, select_test_sets

__all__ = [
    "DEFAULT_SIZE", "MINMAX_EPS", "PRECISIONS", "ImageJob", "ModelSpec", "OutputOptions", "PredictSummary",
    "Predictor", "Size", "TestSetPlan", "binary_mask", "cast_model", "label_map", "load_model", "minmax_normalize",
    "model_dtype", "plan_test_sets", "precision_dtype", "predict_files", "predict_test_sets",
    "prepare_output_folder", "resolve_model_spec", "run_test_sets", "select_test_sets", "to_uint8_map",
    "write_prediction",
]
