// Backward of pranet_wattn_fwd: dqkv [B, T, 3C] and dbias [heads, T, T] (summed over the partitions)
// from qkv, p and dout.
#pragma once
#include "op.h"

namespace jittor {

struct PranetWattnBwdOp : Op {
    Var *qkv, *p, *dout, *dqkv, *dbias;
    int heads;
    float64 scale;
    // @attrs(multiple_outputs)
    PranetWattnBwdOp(Var* qkv, Var* p, Var* dout, int heads, float64 scale);
    const char* name() const override { return "pranet_wattn_bwd"; }
    void infer_shape() override;
    DECLARE_jit_run;
};

}  // namespace jittor
