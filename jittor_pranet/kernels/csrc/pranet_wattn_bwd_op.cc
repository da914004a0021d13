#include <cmath>
#include <dnnl.hpp>
#include "var.h"
#include "pranet_wattn_bwd_op.h"
#include "pranet_dnnl.h"

namespace jittor {

#ifndef JIT
PranetWattnBwdOp::PranetWattnBwdOp(Var* qkv, Var* p, Var* dout, int heads, float64 scale)
    : qkv(qkv), p(p), dout(dout), heads(heads), scale(scale) {
    for (Var* v : {qkv, p, dout}) ASSERT(v->dtype() == ns_float32) << "pranet_wattn_bwd is float32 only";
    flags.set(NodeFlags::_cpu);
    dqkv = create_output(nullptr, ns_float32);
    dbias = create_output(nullptr, ns_float32);
}

void PranetWattnBwdOp::infer_shape() {
    dqkv->set_shape(qkv->shape);
    dbias->set_shape(NanoVector(heads, qkv->shape[1], qkv->shape[1]));
}

void PranetWattnBwdOp::jit_prepare(JK& jk) {
    jk << "«T:float32";
}

#else  // JIT
#ifdef JIT_cpu
void PranetWattnBwdOp::jit_run() {
    const long B = qkv->shape[0], L = qkv->shape[1], C3 = qkv->shape[2], H = heads, C = C3 / 3, D = C / H;
    const float* xp = qkv->ptr<float32>();
    const float* pp = p->ptr<float32>();
    const float* gp = dout->ptr<float32>();
    float* dxp = dqkv->ptr<float32>();
    float* dbp = dbias->ptr<float32>();
    // dS of every partition and head (the bias gradient sums them over the partitions afterwards)
    float* dS_all = (float*)pranet_dnnl::scratch(4, sizeof(float) * B * H * L * L);
    const float sc = (float)scale;
    int failed = 0;
    #pragma omp parallel for schedule(static) reduction(|:failed)
    for (long bh = 0; bh < B * H; bh++) {
        const long b = bh / H, h = bh % H;
        const float* Q = xp + b * L * C3 + h * 3 * D;
        const float* K = Q + D;
        const float* V = Q + 2 * D;
        const float* P = pp + bh * L * L;
        const float* G = gp + b * L * C + h * D;
        float* dQ = dxp + b * L * C3 + h * 3 * D;
        float* dK = dQ + D;
        float* dV = dQ + 2 * D;
        float* dS = dS_all + bh * L * L;
        // dP = dO V^T  [L, L]; dS = P * (dP - rowsum(dP * P)) (the gradient of the biased scores)
        failed |= dnnl_sgemm('N', 'T', L, L, D, 1.f, G, C, V, C3, 0.f, dS, L) != 0;
        for (long i = 0; i < L; i++) {
            float* r = dS + i * L;
            const float* pr = P + i * L;
            float dot = 0;
            for (long j = 0; j < L; j++) dot += r[j] * pr[j];
            for (long j = 0; j < L; j++) r[j] = pr[j] * (r[j] - dot);
        }
        // dQ = scale dS K ; dK = scale dS^T Q ; dV = P^T dO
        failed |= dnnl_sgemm('N', 'N', L, D, L, sc, dS, L, K, C3, 0.f, dQ, C3) != 0;
        failed |= dnnl_sgemm('T', 'N', L, D, L, sc, dS, L, Q, C3, 0.f, dK, C3) != 0;
        failed |= dnnl_sgemm('T', 'N', L, D, L, 1.f, P, L, G, C, 0.f, dV, C3) != 0;
    }
    ASSERTop(failed, ==, 0);
    const long TT = L * L;
    #pragma omp parallel for schedule(static)
    for (long e = 0; e < H * TT; e++) {
        const long h = e / TT, ij = e % TT;
        float s = 0;
        for (long b = 0; b < B; b++) s += dS_all[(b * H + h) * TT + ij];
        dbp[e] = s;
    }
}
#endif  // JIT_cpu
#endif  // JIT

}  // namespace jittor
