// Inference 1x1 convolution of a channel concatenation, plus bias, optional residual and ReLU:
// y = act(W @ concat_i(x_i[:, off_i:off_i+width]) + b (+ res)).  Res2Net's conv3 + bn3 + residual +
// ReLU as one multi-threaded op, without materialising the concatenation as a Jittor tensor.
#pragma once
#include "op.h"

namespace jittor {

struct PranetCatGemmOp : Op {
    vector<Var*> xs;
    Var *w, *b, *res, *y;
    NanoVector offs;
    int relu;
    // inputs: [x_0, ..., x_{k-1}, w, bias] or [..., w, bias, residual] (k = len(offs)); each x_i
    // contributes w.shape[1] / k channels starting at channel offs[i]
    PranetCatGemmOp(vector<Var*>&& inputs, NanoVector offs, int relu, int has_res);
    const char* name() const override { return "pranet_cat_gemm"; }
    void infer_shape() override;
    DECLARE_jit_run;
};

}  // namespace jittor
