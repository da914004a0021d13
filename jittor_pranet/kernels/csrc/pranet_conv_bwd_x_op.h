// Convolution backward-data (NCHW, float32): dx from w and dy; see pranet_dnnl.h.
#pragma once
#include "op.h"

namespace jittor {

struct PranetConvBwdXOp : Op {
    Var *w, *dy, *dx;
    int xh, xw, sh, sw, ph, pw, dh, dw, groups, mode, layout;
    PranetConvBwdXOp(Var* w, Var* dy, int xh, int xw, int sh, int sw, int ph, int pw, int dh, int dw, int groups, int mode, int layout);
    const char* name() const override { return "pranet_conv_bwd_x"; }
    void infer_shape() override;
    DECLARE_jit_run;
};

}  // namespace jittor
