#include <cmath>
#include <dnnl.hpp>
#include "var.h"
#include "pranet_wattn_fwd_op.h"

namespace jittor {

#ifndef JIT
PranetWattnFwdOp::PranetWattnFwdOp(Var* qkv, Var* bias, int heads, float64 scale)
    : qkv(qkv), bias(bias), heads(heads), scale(scale) {
    ASSERT(qkv->dtype() == ns_float32 && bias->dtype() == ns_float32) << "pranet_wattn_fwd is float32 only";
    flags.set(NodeFlags::_cpu);
    out = create_output(nullptr, ns_float32);
    p = create_output(nullptr, ns_float32);
}

void PranetWattnFwdOp::infer_shape() {
    ASSERTop(qkv->shape.size(), ==, 3);
    ASSERTop(bias->shape.size(), ==, 3);
    ASSERTop(qkv->shape[2] % (3 * heads), ==, 0);
    ASSERTop(bias->shape[0], ==, heads);
    ASSERTop(bias->shape[1], ==, qkv->shape[1]);
    ASSERTop(bias->shape[2], ==, qkv->shape[1]);
    out->set_shape(NanoVector(qkv->shape[0], qkv->shape[1], qkv->shape[2] / 3));
    p->set_shape(NanoVector(qkv->shape[0], heads, qkv->shape[1], qkv->shape[1]));
}

void PranetWattnFwdOp::jit_prepare(JK& jk) {
    jk << "«T:float32";
}

#else  // JIT
#ifdef JIT_cpu
void PranetWattnFwdOp::jit_run() {
    const long B = qkv->shape[0], L = qkv->shape[1], C3 = qkv->shape[2], H = heads, C = C3 / 3, D = C / H;
    const float* xp = qkv->ptr<float32>();
    const float* bp = bias->ptr<float32>();
    float* op = out->ptr<float32>();
    float* pp = p->ptr<float32>();
    const float sc = (float)scale;
    int failed = 0;
    #pragma omp parallel for schedule(static) reduction(|:failed)
    for (long bh = 0; bh < B * H; bh++) {
        const long b = bh / H, h = bh % H;
        const float* Q = xp + b * L * C3 + h * 3 * D;
        const float* K = Q + D;
        const float* V = Q + 2 * D;
        const float* Bh = bp + h * L * L;
        float* P = pp + bh * L * L;
        // S = scale * Q K^T + bias  [L, L]; then the softmax of each row in place
        failed |= dnnl_sgemm('N', 'T', L, L, D, sc, Q, C3, K, C3, 0.f, P, L) != 0;
        for (long i = 0; i < L; i++) {
            float* r = P + i * L;
            const float* br = Bh + i * L;
            float mx = -INFINITY;
            for (long j = 0; j < L; j++) { r[j] += br[j]; mx = r[j] > mx ? r[j] : mx; }
            float s = 0;
            for (long j = 0; j < L; j++) { r[j] = std::exp(r[j] - mx); s += r[j]; }
            const float inv = 1.f / s;
            for (long j = 0; j < L; j++) r[j] *= inv;
        }
        // O_h = P V_h  [L, D] at column offset h*D of out
        failed |= dnnl_sgemm('N', 'N', L, D, L, 1.f, P, L, V, C3, 0.f, op + b * L * C + h * D, C) != 0;
    }
    ASSERTop(failed, ==, 0);
}
#endif  // JIT_cpu
#endif  // JIT

}  // namespace jittor
