// Multi-head softmax attention with an additive bias over the tokens of many small partitions
// (MaxViT's windows and grids), float32, no transposes; see jittor_pranet/kernels/window_attention.py.
//   qkv:  [B, T, 3C], per head h the channels h*3D.. as q | k | v (D = C / heads each)
//   bias: [heads, T, T] added to the scaled scores (the same for every partition)
//   out:  [B, T, C] = concat_h softmax(scale * Q_h K_h^T + bias_h) V_h ; p: [B, heads, T, T] (for backward)
// The partitions x heads GEMMs are small (T = 49 or 64 tokens): they run in parallel, one per thread.
#pragma once
#include "op.h"

namespace jittor {

struct PranetWattnFwdOp : Op {
    Var *qkv, *bias, *out, *p;
    int heads;
    float64 scale;
    // @attrs(multiple_outputs)
    PranetWattnFwdOp(Var* qkv, Var* bias, int heads, float64 scale);
    const char* name() const override { return "pranet_wattn_fwd"; }
    void infer_shape() override;
    DECLARE_jit_run;
};

}  // namespace jittor
