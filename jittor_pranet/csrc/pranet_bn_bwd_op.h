// Training-mode BatchNorm backward (NCHW, float32), parallel over channels; see pranet_bn_fwd_op.h.
#pragma once
#include "op.h"

namespace jittor {

struct PranetBnBwdOp : Op {
    Var *x, *dy, *mean, *var, *w, *dx, *dw, *db;
    float64 eps;
    // @attrs(multiple_outputs)
    PranetBnBwdOp(Var* x, Var* dy, Var* mean, Var* var, Var* w, float64 eps);
    const char* name() const override { return "pranet_bn_bwd"; }
    void infer_shape() override;
    DECLARE_jit_run;
};

}  // namespace jittor
