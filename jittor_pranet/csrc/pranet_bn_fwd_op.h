// Training-mode BatchNorm forward (NCHW, float32), parallel over channels; see jittor_pranet/fast.py.
// Outputs y = (x - mean) * (w / sqrt(var + eps)) + b, the batch mean and the biased batch variance
// (two-pass, accumulated in double).  Jittor's own CPU kernels are single-threaded.
#pragma once
#include "op.h"

namespace jittor {

struct PranetBnFwdOp : Op {
    Var *x, *w, *b, *y, *mean, *var;
    float64 eps;
    // @attrs(multiple_outputs)
    PranetBnFwdOp(Var* x, Var* w, Var* b, float64 eps);
    const char* name() const override { return "pranet_bn_fwd"; }
    void infer_shape() override;
    DECLARE_jit_run;
};

}  // namespace jittor
