// Training-mode BatchNorm forward (NCHW, float32), parallel over channels; see jittor_pranet/kernels/.
// Outputs y = act((x - mean) * (w / sqrt(var + eps)) + b (+ residual)), the batch mean and the biased
// batch variance (two-pass, accumulated in double).  Jittor's own CPU kernels are single-threaded, and
// a separate ReLU / residual add would cost two more single-threaded passes forward and backward.
#pragma once
#include "op.h"

namespace jittor {

struct PranetBnFwdOp : Op {
    Var *x, *w, *b, *res, *y, *mean, *var;
    float64 eps;
    int relu;
    // inputs: [x, w, b] or [x, w, b, residual]; relu: apply ReLU last
    // @attrs(multiple_outputs)
    PranetBnFwdOp(vector<Var*>&& inputs, float64 eps, int relu);
    const char* name() const override { return "pranet_bn_fwd"; }
    void infer_shape() override;
    DECLARE_jit_run;
};

}  // namespace jittor
