// Convolution backward-weights (NCHW, float32): dw from x and dy; see pranet_dnnl.h.
#pragma once
#include "op.h"

namespace jittor {

struct PranetConvBwdWOp : Op {
    Var *x, *dy, *dw_;
    int kh, kw, sh, sw, ph, pw, dh, dw, groups, mode, layout;
    PranetConvBwdWOp(Var* x, Var* dy, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int groups, int mode, int layout);
    const char* name() const override { return "pranet_conv_bwd_w"; }
    void infer_shape() override;
    DECLARE_jit_run;
};

}  // namespace jittor
