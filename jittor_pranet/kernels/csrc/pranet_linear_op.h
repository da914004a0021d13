// Inference linear layer: y = x @ w^T (+ bias) (+ residual) as one GEMM and one multi-threaded epilogue.
// Jittor's nn.Linear adds the bias (and the block's residual) in a separate single-threaded kernel:
// ~10% of a PraNet/PVTv2 inference at batch 16 on two cores.
#pragma once
#include "op.h"

namespace jittor {

struct PranetLinearOp : Op {
    Var *x, *w, *b, *res, *y;
    int has_bias, has_res;
    // inputs: [x, w] + [bias] if has_bias + [residual] if has_res; x [..., K], w [O, K], residual [..., O]
    PranetLinearOp(vector<Var*>&& inputs, int has_bias, int has_res);
    const char* name() const override { return "pranet_linear"; }
    void infer_shape() override;
    DECLARE_jit_run;
};

}  // namespace jittor
