#include "var.h"
#include "pranet_conv_fused_op.h"
#include "pranet_dnnl.h"

namespace jittor {

#ifndef JIT
PranetConvFusedOp::PranetConvFusedOp(vector<Var*>&& inputs, int sh, int sw, int ph, int pw, int dh, int dw,
                                     int groups, int mode, int relu, int x_off, int x2_off)
    : sh(sh), sw(sw), ph(ph), pw(pw), dh(dh), dw(dw), groups(groups), mode(mode), relu(relu), x_off(x_off),
      x2_off(x2_off) {
    ASSERT(inputs.size() == 3 || inputs.size() == 4) << "pranet_conv_fused takes [x, w, bias] or [x, w, bias, x2]";
    x = inputs[0];
    w = inputs[1];
    b = inputs[2];
    x2 = inputs.size() == 4 ? inputs[3] : nullptr;
    for (Var* v : inputs) ASSERT(v->dtype() == ns_float32) << "pranet_conv_fused is float32 only";
    flags.set(NodeFlags::_cpu);
    y = create_output(nullptr, ns_float32);
}

void PranetConvFusedOp::infer_shape() {
    ASSERTop(x->shape.size(), ==, 4);
    ASSERTop(w->shape.size(), ==, 4);
    const int C = w->shape[1] * groups;
    ASSERT(x_off >= 0 && x_off + C <= x->shape[1]) << "channel window outside x";
    ASSERTop(b->shape[0], ==, w->shape[0]);
    if (x2) {
        ASSERTop(x2->shape.size(), ==, 4);
        ASSERT(x2->shape[0] == x->shape[0] && x2->shape[2] == x->shape[2] && x2->shape[3] == x->shape[3])
            << "x2 must match x in batch and spatial size";
        ASSERT(x2_off >= 0 && x2_off + C <= x2->shape[1]) << "channel window outside x2";
    }
    int oh = pranet_dnnl::out_size(x->shape[2], w->shape[2], sh, ph, dh);
    int ow = pranet_dnnl::out_size(x->shape[3], w->shape[3], sw, pw, dw);
    y->set_shape(NanoVector(x->shape[0], w->shape[0], oh, ow));
}

void PranetConvFusedOp::jit_prepare(JK& jk) {
    jk << "«T:float32";
}

#else  // JIT
#ifdef JIT_cpu
using namespace pranet_dnnl;

void PranetConvFusedOp::jit_run() {
    const int N = x->shape[0], C = w->shape[1] * groups, H = x->shape[2], W = x->shape[3];
    Geom G{N, C, H, W, (int)w->shape[0], (int)w->shape[2], (int)w->shape[3], (int)y->shape[2], (int)y->shape[3],
           sh, sw, ph, pw, dh, dw, groups};
    const long hw = (long)H * W;
    const float* src = x->ptr<float32>() + (long)x_off * hw;
    long bstride = (long)x->shape[1] * hw;  // distance between images of the channel window
    if (x2) {  // stage x + x2 into one dense buffer (Res2Net's "sp + split")
        float* buf = (float*)scratch(5, (size_t)N * C * hw * sizeof(float));
        const float* a = src;
        const float* c2 = x2->ptr<float32>() + (long)x2_off * hw;
        const long s2 = (long)x2->shape[1] * hw, sa = bstride;
        #pragma omp parallel for collapse(2) schedule(static)
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++) {
                const float* p = a + n * sa + c * hw;
                const float* q = c2 + n * s2 + c * hw;
                float* o = buf + ((long)n * C + c) * hw;
                for (long i = 0; i < hw; i++) o[i] = p[i] + q[i];
            }
        src = buf;
        bstride = (long)C * hw;
    }
    const float* bp = b->ptr<float32>();
    if (G.is_gemm() && mode != 2) {
        conv1x1_gemm(G, w->ptr<float32>(), src, bstride, bp, y->ptr<float32>(), relu);
        return;
    }
    const memory::desc src_user = bstride == (long)C * hw ? plain(G.src(), tag::nchw)
                                                          : memory::desc(G.src(), dt::f32, {bstride, hw, W, 1});
    conv_forward_onednn(G, mode, relu, src_user, tag::nchw, tag::nchw, src, w->ptr<float32>(), bp,
                        y->ptr<float32>());
}
#endif  // JIT_cpu
#endif  // JIT

}  // namespace jittor
