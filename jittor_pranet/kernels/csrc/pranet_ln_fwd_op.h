// LayerNorm over the last dimension (float32), parallel over rows; see jittor_pranet/kernels/.
// Outputs y = (x - mean) / sqrt(var + eps) * w + b and, per row, the mean and 1/sqrt(var + eps)
// (two-pass variance accumulated in double, as ops.LayerNorm computes it).
#pragma once
#include "op.h"

namespace jittor {

struct PranetLnFwdOp : Op {
    Var *x, *w, *b, *y, *mean, *rstd;
    float64 eps;
    // @attrs(multiple_outputs)
    PranetLnFwdOp(Var* x, Var* w, Var* b, float64 eps);
    const char* name() const override { return "pranet_ln_fwd"; }
    void infer_shape() override;
    DECLARE_jit_run;
};

}  // namespace jittor
