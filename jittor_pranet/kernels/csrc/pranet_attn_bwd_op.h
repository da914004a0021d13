// Backward of pranet_attn_fwd: dq [B, N, C] and dkv [B, M, 2C] from q, kv, p and dout.
#pragma once
#include "op.h"

namespace jittor {

struct PranetAttnBwdOp : Op {
    Var *q, *kv, *p, *dout, *dq, *dkv;
    int heads;
    float64 scale;
    // @attrs(multiple_outputs)
    PranetAttnBwdOp(Var* q, Var* kv, Var* p, Var* dout, int heads, float64 scale);
    const char* name() const override { return "pranet_attn_bwd"; }
    void infer_shape() override;
    DECLARE_jit_run;
};

}  // namespace jittor
