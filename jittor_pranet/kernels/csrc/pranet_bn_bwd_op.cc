#include <algorithm>
#include <cmath>
#include "var.h"
#include "pranet_bn_bwd_op.h"

namespace jittor {

#ifndef JIT
PranetBnBwdOp::PranetBnBwdOp(vector<Var*>&& inputs, float64 eps, int relu, int want_dres)
    : eps(eps), relu(relu), want_dres(want_dres) {
    ASSERT((int)inputs.size() == 5 + (relu ? 1 : 0)) << "pranet_bn_bwd takes [x, dy, mean, var, w] (+ [y] with relu)";
    for (Var* v : inputs) ASSERT(v->dtype() == ns_float32) << "pranet_bn_bwd is float32 only";
    x = inputs[0];
    dy = inputs[1];
    mean = inputs[2];
    var = inputs[3];
    w = inputs[4];
    yfwd = relu ? inputs[5] : nullptr;
    flags.set(NodeFlags::_cpu);
    dx = create_output(nullptr, ns_float32);
    dw = create_output(nullptr, ns_float32);
    db = create_output(nullptr, ns_float32);
    dres = create_output(nullptr, ns_float32);
}

void PranetBnBwdOp::infer_shape() {
    ASSERTop(x->shape.size(), ==, 4);
    dx->set_shape(x->shape);
    dw->set_shape(NanoVector(x->shape[1]));
    db->set_shape(NanoVector(x->shape[1]));
    if (yfwd) ASSERT(yfwd->shape == x->shape) << "forward output must have x's shape";
    dres->set_shape(want_dres ? x->shape : NanoVector(1));
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
    const float* yp = yfwd ? yfwd->ptr<float32>() : nullptr;
    float* drp = want_dres ? dres->ptr<float32>() : nullptr;
    const double count = (double)N * HW;
    #pragma omp parallel for schedule(dynamic, 1)
    for (long c = 0; c < C; c++) {
        const float m = mp[c];
        const float invstd = 1.f / std::sqrt(vp[c] + (float)eps);
        double sg = 0, sgx = 0;
        for (long n = 0; n < N; n++) {
            const float* p = xp + (n * C + c) * HW;
            const float* g = gp + (n * C + c) * HW;
            const float* yy = yp ? yp + (n * C + c) * HW : nullptr;
            double a = 0, bsum = 0;
            if (yy) {
                for (long i = 0; i < HW; i++) {
                    const float gi = yy[i] > 0.f ? g[i] : 0.f;
                    a += gi;
                    bsum += (double)gi * (p[i] - m);
                }
            } else {
                for (long i = 0; i < HW; i++) { a += g[i]; bsum += (double)g[i] * (p[i] - m); }
            }
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
            const float* yy = yp ? yp + (n * C + c) * HW : nullptr;
            if (yy) {
                float* dr = drp ? drp + (n * C + c) * HW : nullptr;
                for (long i = 0; i < HW; i++) {
                    const float gi = yy[i] > 0.f ? g[i] : 0.f;
                    q[i] = k * (gi - mg - (p[i] - m) * mgx);
                    if (dr) dr[i] = gi;
                }
            } else {
                for (long i = 0; i < HW; i++) q[i] = k * (g[i] - mg - (p[i] - m) * mgx);
                if (drp) std::copy(g, g + HW, drp + (n * C + c) * HW);
            }
        }
    }
}
#endif  // JIT_cpu
#endif  // JIT

}  // namespace jittor
