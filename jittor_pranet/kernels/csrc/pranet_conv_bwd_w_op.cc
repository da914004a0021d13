#include "var.h"
#include "pranet_conv_bwd_w_op.h"
#include "pranet_dnnl.h"

namespace jittor {

#ifndef JIT
PranetConvBwdWOp::PranetConvBwdWOp(Var* x, Var* dy, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                                   int groups, int mode, int layout)
    : x(x), dy(dy), kh(kh), kw(kw), sh(sh), sw(sw), ph(ph), pw(pw), dh(dh), dw(dw), groups(groups), mode(mode),
      layout(layout) {
    ASSERT(x->dtype() == ns_float32 && dy->dtype() == ns_float32) << "pranet_conv_bwd_w is float32 only";
    flags.set(NodeFlags::_cpu);
    dw_ = create_output(nullptr, ns_float32);
}

void PranetConvBwdWOp::infer_shape() {
    ASSERTop(x->shape.size(), ==, 4);
    ASSERTop(dy->shape.size(), ==, 4);
    const int O = (layout & 2) ? dy->shape[3] : dy->shape[1], C = (layout & 1) ? x->shape[3] : x->shape[1];
    dw_->set_shape(NanoVector(O, C / groups, kh, kw));
}

void PranetConvBwdWOp::jit_prepare(JK& jk) {
    jk << "«T:float32";
}

#else  // JIT
#ifdef JIT_cpu
using namespace pranet_dnnl;

struct BwdWEntry {
    convolution_backward_weights::primitive_desc pd;
    convolution_backward_weights prim;
};

void PranetConvBwdWOp::jit_run() {
    const bool xl = layout & 1, yl = layout & 2;
    Geom G{(int)x->shape[0], (int)x->shape[xl ? 3 : 1], (int)x->shape[xl ? 1 : 2], (int)x->shape[xl ? 2 : 3],
           (int)dy->shape[yl ? 3 : 1], kh, kw, (int)dy->shape[yl ? 1 : 2], (int)dy->shape[yl ? 2 : 3],
           sh, sw, ph, pw, dh, dw, groups};
    const tag xt = xl ? tag::nhwc : tag::nchw, yt = yl ? tag::nhwc : tag::nchw;
    const float* xp = x->ptr<float32>();
    const float* dyp = dy->ptr<float32>();
    float* dwp = dw_->ptr<float32>();
    if (G.is_gemm() && mode != 2 && layout == 0) {
        // dW (O x C) = sum_n dy[n] (O x HW) @ x[n]^T (HW x C)
        const int hw = G.H * G.W;
        for (int n = 0; n < G.N; n++)
            ASSERTop(0, ==, dnnl_sgemm('N', 'T', G.O, G.C, hw, 1.f, dyp + (size_t)n * G.O * hw, hw,
                                       xp + (size_t)n * G.C * hw, hw, n ? 1.f : 0.f, dwp, G.C));
        return;
    }
    static std::unordered_map<std::string, std::unique_ptr<BwdWEntry>> cache;
    auto key = G.key("bwdw", mode, layout);
    auto it = cache.find(key);
    if (it == cache.end()) {
        const ConvMds m = wanted_mds(G, mode, xt, yt);
        auto pd = convolution_backward_weights::primitive_desc(
            convolution_backward_weights::desc(algorithm::convolution_direct, m.src, m.wei, m.dst, G.strides(),
                                               G.dil(), G.pad(), G.pad()),
            eng(), training_hint(G, m));
        it = cache.emplace(key, std::unique_ptr<BwdWEntry>(new BwdWEntry{pd, convolution_backward_weights(pd)}))
                 .first;
    }
    auto& E = *it->second;
    Arg args[3] = {
        {DNNL_ARG_SRC, E.pd.src_desc(), plain(G.src(), xt), (void*)xp, false},
        {DNNL_ARG_DIFF_DST, E.pd.diff_dst_desc(), plain(G.dst(), yt), (void*)dyp, false},
        {DNNL_ARG_DIFF_WEIGHTS, E.pd.diff_weights_desc(), plain(G.wei(), G.wtag()), (void*)dwp, true},
    };
    run_with_reorders(E.prim, args, 3);
}
#endif  // JIT_cpu
#endif  // JIT

}  // namespace jittor
