#include <cmath>
#include "var.h"
#include "pranet_ln_fwd_op.h"

namespace jittor {

#ifndef JIT
PranetLnFwdOp::PranetLnFwdOp(Var* x, Var* w, Var* b, float64 eps) : x(x), w(w), b(b), eps(eps) {
    ASSERT(x->dtype() == ns_float32 && w->dtype() == ns_float32 && b->dtype() == ns_float32)
        << "pranet_ln_fwd is float32 only";
    flags.set(NodeFlags::_cpu);
    y = create_output(nullptr, ns_float32);
    mean = create_output(nullptr, ns_float32);
    rstd = create_output(nullptr, ns_float32);
}

void PranetLnFwdOp::infer_shape() {
    ASSERT(x->shape.size() >= 1);
    const int64 c = x->shape[x->shape.size() - 1];
    ASSERTop(w->shape[0], ==, c);
    ASSERTop(b->shape[0], ==, c);
    y->set_shape(x->shape);
    mean->set_shape(NanoVector(x->num / c));
    rstd->set_shape(NanoVector(x->num / c));
}

void PranetLnFwdOp::jit_prepare(JK& jk) {
    jk << "«T:float32";
}

#else  // JIT
#ifdef JIT_cpu
void PranetLnFwdOp::jit_run() {
    const long C = x->shape[x->shape.size() - 1];
    const long R = x->num / C;
    const float* xp = x->ptr<float32>();
    const float* wp = w->ptr<float32>();
    const float* bp = b->ptr<float32>();
    float* yp = y->ptr<float32>();
    float* mp = mean->ptr<float32>();
    float* rp = rstd->ptr<float32>();
    const float epsf = (float)eps;
    #pragma omp parallel for schedule(static)
    for (long r = 0; r < R; r++) {
        const float* p = xp + r * C;
        float* q = yp + r * C;
        double s = 0;
        for (long i = 0; i < C; i++) s += p[i];
        const float m = (float)(s / C);
        double ss = 0;
        for (long i = 0; i < C; i++) { double d = (double)p[i] - (double)m; ss += d * d; }
        const float v = (float)(ss / C);
        const float denom = std::sqrt(v + epsf);
        for (long i = 0; i < C; i++) q[i] = (p[i] - m) / denom * wp[i] + bp[i];
        mp[r] = m;
        rp[r] = 1.0f / denom;
    }
}
#endif  // JIT_cpu
#endif  // JIT

}  // namespace jittor
