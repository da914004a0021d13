// LayerNorm backward (float32); see pranet_ln_fwd_op.h. Rows in parallel; the weight/bias gradients
// are summed per thread over a fixed (static) row range in double and then in thread order, so a
// given thread count always gives the same bits.
#pragma once
#include "op.h"

namespace jittor {

struct PranetLnBwdOp : Op {
    Var *x, *dy, *mean, *rstd, *w, *dx, *dw, *db;
    // @attrs(multiple_outputs)
    PranetLnBwdOp(Var* x, Var* dy, Var* mean, Var* rstd, Var* w);
    const char* name() const override { return "pranet_ln_bwd"; }
    void infer_shape() override;
    DECLARE_jit_run;
};

}  // namespace jittor
