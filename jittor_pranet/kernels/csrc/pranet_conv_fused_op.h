// Inference convolution of a Res2Net block (BatchNorm folded): y = act(conv(x[:, xo:xo+C] (+ x2[:, x2o:x2o+C])) + b).
// Reads channel windows of its inputs in place (no slice copies) and adds the second input while
// staging it, so Res2Net's split / "sp + split" / ReLU passes need no separate single-threaded ops.
#pragma once
#include "op.h"

namespace jittor {

struct PranetConvFusedOp : Op {
    Var *x, *w, *b, *x2, *y;
    int sh, sw, ph, pw, dh, dw, groups, mode, relu, x_off, x2_off;
    // inputs: [x, w, bias] or [x, w, bias, x2] (all NCHW float32); C = w.shape[1] * groups channels are
    // read from x at channel x_off (and from x2 at x2_off); mode as pranet_conv; relu: fused ReLU
    PranetConvFusedOp(vector<Var*>&& inputs, int sh, int sw, int ph, int pw, int dh, int dw, int groups, int mode, int relu, int x_off, int x2_off);
    const char* name() const override { return "pranet_conv_fused"; }
    void infer_shape() override;
    DECLARE_jit_run;
};

}  // namespace jittor
