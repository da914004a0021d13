// Shared helpers for jittor-pranet's oneDNN convolution ops (see jittor_pranet/kernels/).
//
// Why these ops exist (measured, docs/benchmarks.md): Jittor's own mkl_conv* ops ask oneDNN for
// "any" layouts, so every call reorders its NCHW activations into a blocked/NHWC layout and back
// (about 10 reorders per convolution per training step), and they also route 1x1 convolutions --
// 65% of Res2Net's FLOPs -- through blocked oneDNN kernels with the same reorders.  Here:
//   * 1x1 / stride-1 / ungrouped convolutions are plain row-major GEMMs on NCHW memory
//     (dnnl_sgemm, no reorder at all, forward, backward-data and backward-weights);
//   * other convolutions use cached oneDNN primitives; the activation layout is selectable
//     (plain NCHW, or "any" with reorders) per call so both can be measured;
//   * forward takes an optional bias and a fused activation, ReLU or exact GELU (BatchNorm folded
//     for inference).
// Ops run one at a time on Jittor's executing thread, so one static scratch pool is enough.
#pragma once
#include <dnnl.hpp>
#include <stdlib.h>
#include <cmath>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <unordered_map>

namespace jittor {
namespace pranet_dnnl {

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

inline engine& eng() { static engine e(engine::kind::cpu, 0); return e; }
inline stream& strm() { static stream s(eng()); return s; }

// slot-indexed, grow-only, 64-byte aligned scratch buffers
inline void* scratch(int slot, size_t bytes) {
    static void* ptr[8] = {nullptr};
    static size_t cap[8] = {0};
    if (bytes > cap[slot]) {
        if (ptr[slot]) free(ptr[slot]);
        size_t n = (bytes + 4095) / 4096 * 4096;
        if (posix_memalign(&ptr[slot], 64, n) != 0) ptr[slot] = nullptr;
        cap[slot] = n;
    }
    return ptr[slot];
}

struct Geom {
    int N, C, H, W, O, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw, g;
    std::string key(const char* kind, int mode, int extra) const {
        std::ostringstream s;
        s << kind << ':' << N << ',' << C << ',' << H << ',' << W << ',' << O << ',' << KH << ',' << KW
          << ',' << sh << ',' << sw << ',' << ph << ',' << pw << ',' << dh << ',' << dw << ',' << g
          << ',' << mode << ',' << extra;
        return s.str();
    }
    bool is_gemm() const { return KH == 1 && KW == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0 && g == 1; }
    memory::dims src() const { return {N, C, H, W}; }
    memory::dims wei() const {
        return g > 1 ? memory::dims{g, O / g, C / g, KH, KW} : memory::dims{O, C, KH, KW};
    }
    memory::dims dst() const { return {N, O, OH, OW}; }
    memory::dims strides() const { return {sh, sw}; }
    memory::dims dil() const { return {dh - 1, dw - 1}; }
    memory::dims pad() const { return {ph, pw}; }
    tag wtag() const { return g > 1 ? tag::goihw : tag::oihw; }
};

inline int out_size(int in, int k, int s, int p, int d) { return (in + 2 * p - d * (k - 1) - 1) / s + 1; }

// user (plain) memory descriptors
inline memory::desc plain(const memory::dims& d, tag t) { return memory::desc(d, dt::f32, t); }

// the layouts a primitive is asked for: activations plain (mode 1) or oneDNN's choice, weights its choice
struct ConvMds { memory::desc src, wei, dst; };
inline ConvMds wanted_mds(const Geom& G, int mode, tag xt, tag yt) {
    const bool plain_act = mode == 1;
    return {memory::desc(G.src(), dt::f32, plain_act ? xt : tag::any), memory::desc(G.wei(), dt::f32, tag::any),
            memory::desc(G.dst(), dt::f32, plain_act ? yt : tag::any)};
}

// the forward-training primitive a backward primitive descriptor needs as its hint
inline convolution_forward::primitive_desc training_hint(const Geom& G, const ConvMds& m) {
    return convolution_forward::primitive_desc(
        convolution_forward::desc(prop_kind::forward_training, algorithm::convolution_direct, m.src, m.wei, m.dst,
                                  G.strides(), G.dil(), G.pad(), G.pad()),
        eng());
}

// activation codes of the forward ops: 0 none, 1 ReLU, 2 exact (erf) GELU
inline float act_fn(float v, int act) {
    if (act == 1) return v > 0.f ? v : 0.f;
    if (act == 2) return v * 0.5f * (1.0f + std::erf(v * 0.70710678118654752f));
    return v;
}

inline void append_act(primitive_attr& attr, int act) {
    if (!act) return;
    post_ops po;
    po.append_eltwise(1.f, act == 1 ? algorithm::eltwise_relu : algorithm::eltwise_gelu_erf, 0.f, 0.f);
    attr.set_post_ops(po);
}

// y[r, :] = act(y[r, :] + b[r % O] (+ res[r, :])) for rows r of length hw, in parallel over rows
inline void bias_act(float* y, const float* b, const float* res, long rows, int O, long hw, int act) {
    #pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; r++) {
        float* p = y + r * hw;
        const float* q = res ? res + r * hw : nullptr;
        const float bv = b ? b[r % O] : 0.f;
        if (q && act == 1) for (long i = 0; i < hw; i++) { float v = p[i] + bv + q[i]; p[i] = v > 0.f ? v : 0.f; }
        else if (q) for (long i = 0; i < hw; i++) p[i] = act_fn(p[i] + bv + q[i], act);
        else if (act == 1) for (long i = 0; i < hw; i++) { float v = p[i] + bv; p[i] = v > 0.f ? v : 0.f; }
        else if (act) for (long i = 0; i < hw; i++) p[i] = act_fn(p[i] + bv, act);
        else for (long i = 0; i < hw; i++) p[i] += bv;
    }
}

// run `prim` after reordering user memories into the primitive's layouts when they differ
struct Arg { int id; memory::desc want; memory::desc user; void* ptr; bool out; };

inline void run_with_reorders(const primitive& prim, Arg* args, int nargs) {
    std::unordered_map<int, memory> margs;
    memory outs_user[4], outs_int[4];
    int nout = 0;
    for (int i = 0; i < nargs; i++) {
        Arg& a = args[i];
        memory user(a.user, eng(), a.ptr);
        if (a.want == a.user) { margs.insert({a.id, user}); continue; }
        memory internal(a.want, eng(), scratch(i, a.want.get_size()));
        if (!a.out) reorder(user, internal).execute(strm(), user, internal);
        else { outs_user[nout] = user; outs_int[nout] = internal; nout++; }
        margs.insert({a.id, internal});
    }
    prim.execute(strm(), margs);
    for (int i = 0; i < nout; i++) reorder(outs_int[i], outs_user[i]).execute(strm(), outs_int[i], outs_user[i]);
    strm().wait();
}

// y[n] (O x HW) = W (O x C) @ src[n] (C x HW) for a 1x1 / stride-1 convolution on NCHW memory whose
// images lie `src_stride` floats apart (a channel window of a larger tensor), then bias + activation
inline void conv1x1_gemm(const Geom& G, const float* wp, const float* src, long src_stride, const float* bp,
                         float* yp, int act) {
    const long hw = (long)G.H * G.W;
    for (int n = 0; n < G.N; n++) {
        ASSERTop(0, ==, dnnl_sgemm('N', 'N', G.O, hw, G.C, 1.f, wp, G.C, src + n * src_stride, hw, 0.f,
                                   yp + (size_t)n * G.O * hw, hw));
    }
    if (bp || act) bias_act(yp, bp, nullptr, (long)G.N * G.O, G.O, hw, act);
}

// forward convolution through a primitive cached per geometry: `src_user` describes the caller's
// source memory (plain, or a strided channel window), xt / yt the plain activation layouts
inline void conv_forward_onednn(const Geom& G, int mode, int act, const memory::desc& src_user, tag xt, tag yt,
                                const float* xp, const float* wp, const float* bp, float* yp) {
    struct Entry {
        convolution_forward::primitive_desc pd;
        convolution_forward prim;
    };
    static std::unordered_map<std::string, std::unique_ptr<Entry>> cache;
    const memory::desc b_md({G.O}, dt::f32, tag::x);
    auto key = G.key("fwd", mode, (bp ? 1 : 0) + 2 * act + 8 * (xt == tag::nhwc) + 16 * (yt == tag::nhwc));
    auto it = cache.find(key);
    if (it == cache.end()) {
        const ConvMds m = wanted_mds(G, mode, xt, yt);
        auto d = bp ? convolution_forward::desc(prop_kind::forward_inference, algorithm::convolution_direct,
                                                m.src, m.wei, b_md, m.dst, G.strides(), G.dil(), G.pad(), G.pad())
                    : convolution_forward::desc(prop_kind::forward_inference, algorithm::convolution_direct,
                                                m.src, m.wei, m.dst, G.strides(), G.dil(), G.pad(), G.pad());
        primitive_attr attr;
        append_act(attr, act);
        auto pd = convolution_forward::primitive_desc(d, attr, eng());
        it = cache.emplace(key, std::unique_ptr<Entry>(new Entry{pd, convolution_forward(pd)})).first;
    }
    auto& E = *it->second;
    Arg args[4] = {
        {DNNL_ARG_SRC, E.pd.src_desc(), src_user, (void*)xp, false},
        {DNNL_ARG_WEIGHTS, E.pd.weights_desc(), plain(G.wei(), G.wtag()), (void*)wp, false},
        {DNNL_ARG_DST, E.pd.dst_desc(), plain(G.dst(), yt), (void*)yp, true},
        {DNNL_ARG_BIAS, b_md, b_md, (void*)bp, false},
    };
    run_with_reorders(E.prim, args, bp ? 4 : 3);
}

}  // namespace pranet_dnnl
}  // namespace jittor
