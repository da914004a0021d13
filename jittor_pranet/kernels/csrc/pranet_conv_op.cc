#include "var.h"
#include "pranet_conv_op.h"
#include "pranet_dnnl.h"

namespace jittor {

#ifndef JIT
PranetConvOp::PranetConvOp(vector<Var*>&& inputs, int sh, int sw, int ph, int pw, int dh, int dw, int groups,
                           int mode, int act, int layout)
    : sh(sh), sw(sw), ph(ph), pw(pw), dh(dh), dw(dw), groups(groups), mode(mode), act(act), layout(layout) {
    ASSERT(inputs.size() == 2 || inputs.size() == 3) << "pranet_conv takes [x, w] or [x, w, bias]";
    x = inputs[0];
    w = inputs[1];
    b = inputs.size() == 3 ? inputs[2] : nullptr;
    for (Var* v : inputs) ASSERT(v->dtype() == ns_float32) << "pranet_conv is float32 only";
    flags.set(NodeFlags::_cpu);
    y = create_output(nullptr, ns_float32);
}

void PranetConvOp::infer_shape() {
    ASSERTop(x->shape.size(), ==, 4);
    ASSERTop(w->shape.size(), ==, 4);
    const bool xl = layout & 1, yl = layout & 2;
    const int C = xl ? x->shape[3] : x->shape[1], H = xl ? x->shape[1] : x->shape[2], W = xl ? x->shape[2] : x->shape[3];
    ASSERTop(w->shape[1] * groups, ==, C);
    if (b) ASSERTop(b->shape[0], ==, w->shape[0]);
    int oh = pranet_dnnl::out_size(H, w->shape[2], sh, ph, dh);
    int ow = pranet_dnnl::out_size(W, w->shape[3], sw, pw, dw);
    if (yl) y->set_shape(NanoVector(x->shape[0], oh, ow, w->shape[0]));
    else y->set_shape(NanoVector(x->shape[0], w->shape[0], oh, ow));
}

void PranetConvOp::jit_prepare(JK& jk) {
    jk << "«T:float32";
}

#else  // JIT
#ifdef JIT_cpu
using namespace pranet_dnnl;

void PranetConvOp::jit_run() {
    const bool xl = layout & 1, yl = layout & 2;
    Geom G{(int)x->shape[0], (int)x->shape[xl ? 3 : 1], (int)x->shape[xl ? 1 : 2], (int)x->shape[xl ? 2 : 3],
           (int)w->shape[0], (int)w->shape[2], (int)w->shape[3], (int)y->shape[yl ? 1 : 2], (int)y->shape[yl ? 2 : 3],
           sh, sw, ph, pw, dh, dw, groups};
    const tag xt = xl ? tag::nhwc : tag::nchw, yt = yl ? tag::nhwc : tag::nchw;
    const float* bp = b ? b->ptr<float32>() : nullptr;
    if (G.is_gemm() && mode != 2 && layout == 0) {
        conv1x1_gemm(G, w->ptr<float32>(), x->ptr<float32>(), (long)G.C * G.H * G.W, bp, y->ptr<float32>(), act);
        return;
    }
    conv_forward_onednn(G, mode, act, plain(G.src(), xt), xt, yt, x->ptr<float32>(), w->ptr<float32>(), bp,
                        y->ptr<float32>());
}
#endif  // JIT_cpu
#endif  // JIT

}  // namespace jittor
