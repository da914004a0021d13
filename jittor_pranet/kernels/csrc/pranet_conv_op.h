// Forward convolution (NCHW, float32) with optional bias and fused activation; see pranet_dnnl.h.
#pragma once
#include "op.h"

namespace jittor {

struct PranetConvOp : Op {
    Var *x, *w, *b, *y;
    int sh, sw, ph, pw, dh, dw, groups, mode, act, layout;
    // inputs: [x, w] or [x, w, bias]; mode: 0 auto (1x1 -> sgemm, other -> oneDNN "any" layout),
    // 1 (1x1 -> sgemm, other -> oneDNN on plain NCHW), 2 (all oneDNN "any", as Jittor's own op);
    // act: activation code (0 none, 1 ReLU, 2 exact GELU; see pranet_dnnl.h);
    // layout: bit 0 set = x is NHWC, bit 1 set = y is NHWC (token-major tensors of PVTv2), else NCHW
    PranetConvOp(vector<Var*>&& inputs, int sh, int sw, int ph, int pw, int dh, int dw, int groups, int mode, int act, int layout);
    const char* name() const override { return "pranet_conv"; }
    void infer_shape() override;
    DECLARE_jit_run;
};

}  // namespace jittor
