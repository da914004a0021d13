#include <cmath>
#include <dnnl.hpp>
#include "var.h"
#include "pranet_attn_fwd_op.h"

namespace jittor {

#ifndef JIT
PranetAttnFwdOp::PranetAttnFwdOp(Var* q, Var* kv, int heads, float64 scale) : q(q), kv(kv), heads(heads), scale(scale) {
    ASSERT(q->dtype() == ns_float32 && kv->dtype() == ns_float32) << "pranet_attn_fwd is float32 only";
    flags.set(NodeFlags::_cpu);
    out = create_output(nullptr, ns_float32);
    p = create_output(nullptr, ns_float32);
}

void PranetAttnFwdOp::infer_shape() {
    ASSERTop(q->shape.size(), ==, 3);
    ASSERTop(kv->shape.size(), ==, 3);
    ASSERTop(kv->shape[0], ==, q->shape[0]);
    ASSERTop(kv->shape[2], ==, 2 * q->shape[2]);
    ASSERTop(q->shape[2] % heads, ==, 0);
    out->set_shape(q->shape);
    p->set_shape(NanoVector(q->shape[0], heads, q->shape[1], kv->shape[1]));
}

void PranetAttnFwdOp::jit_prepare(JK& jk) {
    jk << "«T:float32";
}

#else  // JIT
#ifdef JIT_cpu
void PranetAttnFwdOp::jit_run() {
    const long B = q->shape[0], N = q->shape[1], C = q->shape[2], M = kv->shape[1], H = heads, D = C / H;
    const float* qp = q->ptr<float32>();
    const float* kvp = kv->ptr<float32>();
    float* op = out->ptr<float32>();
    float* pp = p->ptr<float32>();
    for (long b = 0; b < B; b++) {
        for (long h = 0; h < H; h++) {
            const float* Q = qp + b * N * C + h * D;
            const float* K = kvp + b * M * 2 * C + h * D;
            const float* V = K + C;
            float* P = pp + (b * H + h) * N * M;
            // S = scale * Q K^T  [N, M]
            ASSERTop(0, ==, dnnl_sgemm('N', 'T', N, M, D, (float)scale, Q, C, K, 2 * C, 0.f, P, M));
            #pragma omp parallel for
            for (long i = 0; i < N; i++) {
                float* r = P + i * M;
                float mx = r[0];
                for (long j = 1; j < M; j++) mx = r[j] > mx ? r[j] : mx;
                float s = 0;
                for (long j = 0; j < M; j++) { r[j] = std::exp(r[j] - mx); s += r[j]; }
                const float inv = 1.f / s;
                for (long j = 0; j < M; j++) r[j] *= inv;
            }
            // O_h = P V_h  [N, D] written at column offset h*D of out
            ASSERTop(0, ==, dnnl_sgemm('N', 'N', N, D, M, 1.f, P, M, V, 2 * C, 0.f, op + b * N * C + h * D, C));
        }
    }
}
#endif  // JIT_cpu
#endif  // JIT

}  // namespace jittor
