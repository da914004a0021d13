#include <cmath>
#include "var.h"
#include "pranet_bn_bwd_op.h"

namespace jittor {

#ifndef JIT
PranetBnBwdOp::PranetBnBwdOp(Var* x, Var* dy, Var* mean, Var* var, Var* w, float64 eps)
    : x(x), dy(dy), mean(mean), var(var), w(w), eps(eps) {
    for (Var* v : {x, dy, mean, var, w}) ASSERT(v->dtype() == ns_float32) << "pranet_bn_bwd is float32 only";
    flags.set(NodeFlags::_cpu);
    dx = create_output(nullptr, ns_float32);
    dw = create_output(nullptr, ns_float32);
    db = create_output(nullptr, ns_float32);
}

void PranetBnBwdOp::infer_shape() {
    ASSERTop(x->shape.size(), ==, 4);
    dx->set_shape(x->shape);
    dw->set_shape(NanoVector(x->shape[1]));
    db->set_shape(NanoVector(x->shape[1]));
}

void PranetBnBwdOp::jit_prepare(JK& jk) {
    jk << "«T:float32";
}

#else  // JIT
#ifdef JIT_cpu
void PranetBnBwdOp::jit_run() {
    const long N = x->shape[0], C = x->shape[1], HW = x->shape[2] * x->shape[3];
    const float* xp = x->ptr<float32>();
    const float* gp = dy->ptr<float32>();
    const float* mp = mean->ptr<float32>();
    const float* vp = var->ptr<float32>();
    const float* wp = w->ptr<float32>();
    float* dxp = dx->ptr<float32>();
    float* dwp = dw->ptr<float32>();
    float* dbp = db->ptr<float32>();
    const double count = (double)N * HW;
    #pragma omp parallel for schedule(dynamic, 1)
    for (long c = 0; c < C; c++) {
        const float m = mp[c];
        const float invstd = 1.f / std::sqrt(vp[c] + (float)eps);
        double sg = 0, sgx = 0;
        for (long n = 0; n < N; n++) {
            const float* p = xp + (n * C + c) * HW;
            const float* g = gp + (n * C + c) * HW;
            double a = 0, bsum = 0;
            for (long i = 0; i < HW; i++) { a += g[i]; bsum += (double)g[i] * (p[i] - m); }
            sg += a;
            sgx += bsum;
        }
        const float dbias = (float)sg;
        const float dweight = (float)(sgx * invstd);
        dbp[c] = dbias;
        dwp[c] = dweight;
        const float k = wp[c] * invstd;
        const float mg = (float)(sg / count);
        const float mgx = (float)(sgx / count) * invstd * invstd;  // mean(dy * xhat) * invstd
        for (long n = 0; n < N; n++) {
            const float* p = xp + (n * C + c) * HW;
            const float* g = gp + (n * C + c) * HW;
            float* q = dxp + (n * C + c) * HW;
            for (long i = 0; i < HW; i++) q[i] = k * (g[i] - mg - (p[i] - m) * mgx);
        }
    }
}
#endif  // JIT_cpu
#endif  // JIT

}  // namespace jittor
