// 2-D max / average pooling (NCHW float32, forward only) of a channel window, parallel over planes.
// Jittor composes pooling from strided slices and a reduction, each single-threaded; Res2Net's stem
// max-pool, its stage average pools and its downsample pools cost ~10% of a batch-8 inference that way.
#pragma once
#include "op.h"

namespace jittor {

struct PranetPoolOp : Op {
    Var *x, *y;
    int kind, k, s, p, ceil_mode, c_off, channels;
    // kind 0: max (padding never wins; a NaN input is skipped, where PyTorch would propagate it),
    // 1: average counting the zero padding (PyTorch's default), 2: average over the in-bounds
    // elements only (count_include_pad=False); PyTorch's output size and divisor rules (ceil_mode
    // included); channels [c_off, c_off + channels) of x (channels -1: the rest)
    PranetPoolOp(Var* x, int kind, int k, int s, int p, int ceil_mode, int c_off, int channels);
    const char* name() const override { return "pranet_pool"; }
    void infer_shape() override;
    DECLARE_jit_run;
};

}  // namespace jittor
