#include "var.h"
#include "pranet_conv_bwd_x_op.h"
#include "pranet_dnnl.h"

namespace jittor {

#ifndef JIT
PranetConvBwdXOp::PranetConvBwdXOp(Var* w, Var* dy, int xh, int xw, int sh, int sw, int ph, int pw, int dh, int dw,
                                   int groups, int mode, int layout)
    : w(w), dy(dy), xh(xh), xw(xw), sh(sh), sw(sw), ph(ph), pw(pw), dh(dh), dw(dw), groups(groups), mode(mode),
      layout(layout) {
    ASSERT(w->dtype() == ns_float32 && dy->dtype() == ns_float32) << "pranet_conv_bwd_x is float32 only";
    flags.set(NodeFlags::_cpu);
    dx = create_output(nullptr, ns_float32);
}

void PranetConvBwdXOp::infer_shape() {
    ASSERTop(w->shape.size(), ==, 4);
    ASSERTop(dy->shape.size(), ==, 4);
    if (layout & 1) dx->set_shape(NanoVector(dy->shape[0], xh, xw, w->shape[1] * groups));
    else dx->set_shape(NanoVector(dy->shape[0], w->shape[1] * groups, xh, xw));
}

void PranetConvBwdXOp::jit_prepare(JK& jk) {
    jk << "«T:float32";
}

#else  // JIT
#ifdef JIT_cpu
using namespace pranet_dnnl;

struct BwdXEntry {
    convolution_backward_data::primitive_desc pd;
    convolution_backward_data prim;
};

void PranetConvBwdXOp::jit_run() {
    const bool xl = layout & 1, yl = layout & 2;
    Geom G{(int)dy->shape[0], (int)w->shape[1] * groups, xh, xw, (int)w->shape[0], (int)w->shape[2], (int)w->shape[3],
           (int)dy->shape[yl ? 1 : 2], (int)dy->shape[yl ? 2 : 3], sh, sw, ph, pw, dh, dw, groups};
    const tag xt = xl ? tag::nhwc : tag::nchw, yt = yl ? tag::nhwc : tag::nchw;
    const float* wp = w->ptr<float32>();
    const float* dyp = dy->ptr<float32>();
    float* dxp = dx->ptr<float32>();
    if (G.is_gemm() && mode != 2 && layout == 0) {
        // dx[n] (C x HW) = W^T (C x O) @ dy[n] (O x HW)
        const int hw = G.H * G.W;
        for (int n = 0; n < G.N; n++)
            ASSERTop(0, ==, dnnl_sgemm('T', 'N', G.C, hw, G.O, 1.f, wp, G.C, dyp + (size_t)n * G.O * hw, hw,
                                       0.f, dxp + (size_t)n * G.C * hw, hw));
        return;
    }
    static std::unordered_map<std::string, std::unique_ptr<BwdXEntry>> cache;
    auto key = G.key("bwdx", mode, layout);
    auto it = cache.find(key);
    if (it == cache.end()) {
        const ConvMds m = wanted_mds(G, mode, xt, yt);
        auto pd = convolution_backward_data::primitive_desc(
            convolution_backward_data::desc(algorithm::convolution_direct, m.src, m.wei, m.dst, G.strides(),
                                            G.dil(), G.pad(), G.pad()),
            eng(), training_hint(G, m));
        it = cache.emplace(key, std::unique_ptr<BwdXEntry>(new BwdXEntry{pd, convolution_backward_data(pd)})).first;
    }
    auto& E = *it->second;
    Arg args[3] = {
        {DNNL_ARG_WEIGHTS, E.pd.weights_desc(), plain(G.wei(), G.wtag()), (void*)wp, false},
        {DNNL_ARG_DIFF_DST, E.pd.diff_dst_desc(), plain(G.dst(), yt), (void*)dyp, false},
        {DNNL_ARG_DIFF_SRC, E.pd.diff_src_desc(), plain(G.src(), xt), (void*)dxp, true},
    };
    run_with_reorders(E.prim, args, 3);
}
#endif  // JIT_cpu
#endif  // JIT

}  // namespace jittor
