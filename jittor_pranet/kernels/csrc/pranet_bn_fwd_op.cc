#include <cmath>
#include "var.h"
#include "pranet_bn_fwd_op.h"

namespace jittor {

#ifndef JIT
PranetBnFwdOp::PranetBnFwdOp(vector<Var*>&& inputs, float64 eps, int relu) : eps(eps), relu(relu) {
    ASSERT(inputs.size() == 3 || inputs.size() == 4) << "pranet_bn_fwd takes [x, w, b] or [x, w, b, residual]";
    for (Var* v : inputs) ASSERT(v->dtype() == ns_float32) << "pranet_bn_fwd is float32 only";
    x = inputs[0];
    w = inputs[1];
    b = inputs[2];
    res = inputs.size() == 4 ? inputs[3] : nullptr;
    flags.set(NodeFlags::_cpu);
    y = create_output(nullptr, ns_float32);
    mean = create_output(nullptr, ns_float32);
    var = create_output(nullptr, ns_float32);
}

void PranetBnFwdOp::infer_shape() {
    ASSERTop(x->shape.size(), ==, 4);
    ASSERTop(w->shape[0], ==, x->shape[1]);
    ASSERTop(b->shape[0], ==, x->shape[1]);
    if (res) ASSERT(res->shape == x->shape) << "residual must have x's shape";
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
    const float* rp = res ? res->ptr<float32>() : nullptr;
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
            const float* r = rp ? rp + (n * C + c) * HW : nullptr;
            if (r && relu) for (long i = 0; i < HW; i++) { float v = (p[i] - mf) * scale + shift + r[i]; q[i] = v > 0.f ? v : 0.f; }
            else if (r) for (long i = 0; i < HW; i++) q[i] = (p[i] - mf) * scale + shift + r[i];
            else if (relu) for (long i = 0; i < HW; i++) { float v = (p[i] - mf) * scale + shift; q[i] = v > 0.f ? v : 0.f; }
            else for (long i = 0; i < HW; i++) q[i] = (p[i] - mf) * scale + shift;
        }
    }
}
#endif  // JIT_cpu
#endif  // JIT

}  // namespace jittor
