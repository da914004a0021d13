#include <cmath>
#include <dnnl.hpp>
#include "var.h"
#include "pranet_attn_bwd_op.h"
#include "pranet_dnnl.h"

namespace jittor {

#ifndef JIT
PranetAttnBwdOp::PranetAttnBwdOp(Var* q, Var* kv, Var* p, Var* dout, int heads, float64 scale)
    : q(q), kv(kv), p(p), dout(dout), heads(heads), scale(scale) {
    for (Var* v : {q, kv, p, dout}) ASSERT(v->dtype() == ns_float32) << "pranet_attn_bwd is float32 only";
    flags.set(NodeFlags::_cpu);
    dq = create_output(nullptr, ns_float32);
    dkv = create_output(nullptr, ns_float32);
}

void PranetAttnBwdOp::infer_shape() {
    dq->set_shape(q->shape);
    dkv->set_shape(kv->shape);
}

void PranetAttnBwdOp::jit_prepare(JK& jk) {
    jk << "«T:float32";
}

#else  // JIT
#ifdef JIT_cpu
void PranetAttnBwdOp::jit_run() {
    const long B = q->shape[0], N = q->shape[1], C = q->shape[2], M = kv->shape[1], H = heads, D = C / H;
    const float* qp = q->ptr<float32>();
    const float* kvp = kv->ptr<float32>();
    const float* pp = p->ptr<float32>();
    const float* gp = dout->ptr<float32>();
    float* dqp = dq->ptr<float32>();
    float* dkvp = dkv->ptr<float32>();
    float* dS = (float*)pranet_dnnl::scratch(7, sizeof(float) * N * M);
    for (long b = 0; b < B; b++) {
        for (long h = 0; h < H; h++) {
            const float* Q = qp + b * N * C + h * D;
            const float* K = kvp + b * M * 2 * C + h * D;
            const float* V = K + C;
            const float* P = pp + (b * H + h) * N * M;
            const float* G = gp + b * N * C + h * D;
            float* dQ = dqp + b * N * C + h * D;
            float* dK = dkvp + b * M * 2 * C + h * D;
            float* dV = dK + C;
            // dP = dO V^T  [N, M]
            ASSERTop(0, ==, dnnl_sgemm('N', 'T', N, M, D, 1.f, G, C, V, 2 * C, 0.f, dS, M));
            // dS = scale * P * (dP - rowsum(dP * P))
            const float sc = (float)scale;
            #pragma omp parallel for
            for (long i = 0; i < N; i++) {
                float* r = dS + i * M;
                const float* pr = P + i * M;
                float dot = 0;
                for (long j = 0; j < M; j++) dot += r[j] * pr[j];
                for (long j = 0; j < M; j++) r[j] = sc * pr[j] * (r[j] - dot);
            }
            // dQ = dS K ; dK = dS^T Q ; dV = P^T dO
            ASSERTop(0, ==, dnnl_sgemm('N', 'N', N, D, M, 1.f, dS, M, K, 2 * C, 0.f, dQ, C));
            ASSERTop(0, ==, dnnl_sgemm('T', 'N', M, D, N, 1.f, dS, M, Q, C, 0.f, dK, 2 * C));
            ASSERTop(0, ==, dnnl_sgemm('T', 'N', M, D, N, 1.f, P, M, G, C, 0.f, dV, 2 * C));
        }
    }
}
#endif  // JIT_cpu
#endif  // JIT

}  // namespace jittor
