#include <cmath>
#include "var.h"
#include "pranet_bn_fwd_op.h"

namespace jittor {

#ifndef JIT
PranetBnFwdOp::PranetBnFwdOp(Var* x, Var* w, Var* b, float64 eps) : x(x), w(w), b(b), eps(eps) {
    ASSERT(x->dtype() == ns_float32 && w->dtype() == ns_float32 && b->dtype() == ns_float32)
        << "pranet_bn_fwd is float32 only";
    flags.set(NodeFlags::_cpu);
    y = create_output(nullptr, ns_float32);
    mean = create_output(nullptr, ns_float32);
    var = create_output(nullptr, ns_float32);
}

void PranetBnFwdOp::infer_shape() {
    ASSERTop(x->shape.size(), ==, 4);
    ASSERTop(w->shape[0], ==, x->shape[1]);
    ASSERTop(b->shape[0], ==, x->shape[1]);
    y->set_shape(x->shape);
    mean->set_shape(NanoVector(x->shape[1]));
    var->set_shape(NanoVector(x->shape[1]));
}

void PranetBnFwdOp::jit_prepare(JK& jk) {
    jk << "«T:float32";
}

#else  // JIT
#ifdef JIT_cpu
void PranetBnFwdOp::jit_run() {
    const long N = x->shape[0], C = x->shape[1], HW = x->shape[2] * x->shape[3];
    const float* xp = x->ptr<float32>();
    const float* wp = w->ptr<float32>();
    const float* bp = b->ptr<float32>();
    float* yp = y->ptr<float32>();
    float* mp = mean->ptr<float32>();
    float* vp = var->ptr<float32>();
    const double count = (double)N * HW;
    #pragma omp parallel for schedule(dynamic, 1)
    for (long c = 0; c < C; c++) {
        double s = 0;
        for (long n = 0; n < N; n++) {
            const float* p = xp + (n * C + c) * HW;
            double acc = 0;
            for (long i = 0; i < HW; i++) acc += p[i];
            s += acc;
        }
        const double m = s / count;
        double ss = 0;
        const float mf = (float)m;
        for (long n = 0; n < N; n++) {
            const float* p = xp + (n * C + c) * HW;
            double acc = 0;
            for (long i = 0; i < HW; i++) { double d = (double)p[i] - m; acc += d * d; }
            ss += acc;
        }
        const float v = (float)(ss / count);
        mp[c] = mf;
        vp[c] = v;
        const float scale = wp[c] / std::sqrt(v + (float)eps);
        const float shift = bp[c];
        for (long n = 0; n < N; n++) {
            const float* p = xp + (n * C + c) * HW;
            float* q = yp + (n * C + c) * HW;
            for (long i = 0; i < HW; i++) q[i] = (p[i] - mf) * scale + shift;
        }
    }
}
#endif  // JIT_cpu
#endif  // JIT

}  // namespace jittor
