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

struct FwdEntry {
    convolution_forward::primitive_desc pd;
    convolution_forward prim;
};

void PranetConvOp::jit_run() {
    const bool xl = layout & 1, yl = layout & 2;
    Geom G{(int)x->shape[0], (int)x->shape[xl ? 3 : 1], (int)x->shape[xl ? 1 : 2], (int)x->shape[xl ? 2 : 3],
           (int)w->shape[0], (int)w->shape[2], (int)w->shape[3], (int)y->shape[yl ? 1 : 2], (int)y->shape[yl ? 2 : 3],
           sh, sw, ph, pw, dh, dw, groups};
    const tag xt = xl ? tag::nhwc : tag::nchw, yt = yl ? tag::nhwc : tag::nchw;
    const float* xp = x->ptr<float32>();
    const float* wp = w->ptr<float32>();
    float* yp = y->ptr<float32>();
    if (G.is_gemm() && mode != 2 && layout == 0) {
        // y[n] (O x HW) = W (O x C) @ x[n] (C x HW)
        const int hw = G.H * G.W;
        for (int n = 0; n < G.N; n++) {
            ASSERTop(0, ==, dnnl_sgemm('N', 'N', G.O, hw, G.C, 1.f, wp, G.C, xp + (size_t)n * G.C * hw, hw,
                                       0.f, yp + (size_t)n * G.O * hw, hw));
        }
        if (b || act) bias_act(yp, b ? b->ptr<float32>() : nullptr, nullptr, (long)G.N * G.O, G.O, hw, act);
        return;
    }
    static std::unordered_map<std::string, std::unique_ptr<FwdEntry>> cache;
    auto key = G.key("fwd", mode, (b ? 1 : 0) + 2 * act + 8 * layout);
    auto it = cache.find(key);
    if (it == cache.end()) {
        const ConvMds m = wanted_mds(G, mode, xt, yt);
        memory::desc b_md({G.O}, dt::f32, tag::x);
        auto d = b ? convolution_forward::desc(prop_kind::forward_inference, algorithm::convolution_direct,
                                               m.src, m.wei, b_md, m.dst, G.strides(), G.dil(), G.pad(), G.pad())
                   : convolution_forward::desc(prop_kind::forward_inference, algorithm::convolution_direct,
                                               m.src, m.wei, m.dst, G.strides(), G.dil(), G.pad(), G.pad());
        primitive_attr attr;
        append_act(attr, act);
        auto pd = convolution_forward::primitive_desc(d, attr, eng());
        auto e = std::unique_ptr<FwdEntry>(new FwdEntry{pd, convolution_forward(pd)});
        it = cache.emplace(key, std::move(e)).first;
    }
    auto& E = *it->second;
    Arg args[4] = {
        {DNNL_ARG_SRC, E.pd.src_desc(), plain(G.src(), xt), (void*)xp, false},
        {DNNL_ARG_WEIGHTS, E.pd.weights_desc(), plain(G.wei(), G.wtag()), (void*)wp, false},
        {DNNL_ARG_DST, E.pd.dst_desc(), plain(G.dst(), yt), (void*)yp, true},
        {DNNL_ARG_BIAS, memory::desc({G.O}, dt::f32, tag::x), memory::desc({G.O}, dt::f32, tag::x),
         b ? (void*)b->ptr<float32>() : nullptr, false},
    };
    run_with_reorders(E.prim, args, b ? 4 : 3);
}
#endif  // JIT_cpu
#endif  // JIT

}  // namespace jittor
