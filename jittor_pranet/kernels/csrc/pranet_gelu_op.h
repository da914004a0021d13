// Exact (erf) GELU and its derivative, element-wise in parallel (float32); see jittor_pranet/kernels/.
// backward = 0: y = x * (1 + erf(x / sqrt 2)) / 2; backward = 1: inputs (x, dy), y = dy * GELU'(x).
#pragma once
#include "op.h"

namespace jittor {

struct PranetGeluOp : Op {
    Var *x, *dy, *y;
    int backward;
    PranetGeluOp(Var* x, Var* dy, int backward);
    const char* name() const override { return "pranet_gelu"; }
    void infer_shape() override;
    DECLARE_jit_run;
};

}  // namespace jittor
