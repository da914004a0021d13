// Multi-head softmax attention on token-major tensors (float32), no transposes; see jittor_pranet/kernels/.
//   q: [B, N, C], kv: [B, M, 2C] (keys in channels [0, C), values in [C, 2C), head h = channels h*D..h*D+D)
//   out: [B, N, C] = concat_h softmax(scale * Q_h K_h^T) V_h ; p: [B, H, N, M] the probabilities (for backward)
// Each head is addressed in place through the GEMM leading dimensions (C for q/out, 2C for kv).
#pragma once
#include "op.h"

namespace jittor {

struct PranetAttnFwdOp : Op {
    Var *q, *kv, *out, *p;
    int heads;
    float64 scale;
    // @attrs(multiple_outputs)
    PranetAttnFwdOp(Var* q, Var* kv, int heads, float64 scale);
    const char* name() const override { return "pranet_attn_fwd"; }
    void infer_shape() override;
    DECLARE_jit_run;
};

}  // namespace jittor
