// Training-mode BatchNorm backward (NCHW, float32), parallel over channels; see pranet_bn_fwd_op.h.
// With relu the incoming gradient is first masked by the forward output (y > 0); dres is that masked
// gradient (the residual's gradient) when asked for.
#pragma once
#include "op.h"

namespace jittor {

struct PranetBnBwdOp : Op {
    Var *x, *dy, *mean, *var, *w, *yfwd, *dx, *dw, *db, *dres;
    float64 eps;
    int relu, want_dres;
    // inputs: [x, dy, mean, var, w] + [y of the forward] when relu
    // @attrs(multiple_outputs)
    PranetBnBwdOp(vector<Var*>&& inputs, float64 eps, int relu, int want_dres);
    const char* name() const override { return "pranet_bn_bwd"; }
    void infer_shape() override;
    DECLARE_jit_run;
};

}  // namespace jittor
