#include <cmath>
#include "var.h"
#include "pranet_gelu_op.h"

namespace jittor {

#ifndef JIT
PranetGeluOp::PranetGeluOp(Var* x, Var* dy, int backward) : x(x), dy(dy), backward(backward) {
    ASSERT(x->dtype() == ns_float32 && dy->dtype() == ns_float32) << "pranet_gelu is float32 only";
    flags.set(NodeFlags::_cpu);
    y = create_output(nullptr, ns_float32);
}

void PranetGeluOp::infer_shape() {
    ASSERTop(x->num, ==, dy->num);
    y->set_shape(x->shape);
}

void PranetGeluOp::jit_prepare(JK& jk) {
    jk << "«T:float32";
}

#else  // JIT
#ifdef JIT_cpu
void PranetGeluOp::jit_run() {
    const long n = x->num;
    const float* xp = x->ptr<float32>();
    const float* gp = dy->ptr<float32>();
    float* yp = y->ptr<float32>();
    const float inv_sqrt2 = 0.70710678118654752f, inv_sqrt_2pi = 0.39894228040143268f;
    if (!backward) {
        #pragma omp parallel for schedule(static)
        for (long i = 0; i < n; i++) yp[i] = xp[i] * 0.5f * (1.0f + std::erf(xp[i] * inv_sqrt2));
    } else {
        #pragma omp parallel for schedule(static)
        for (long i = 0; i < n; i++) {
            const float v = xp[i];
            const float cdf = 0.5f * (1.0f + std::erf(v * inv_sqrt2));
            yp[i] = gp[i] * (cdf + v * inv_sqrt_2pi * std::exp(-0.5f * v * v));
        }
    }
}
#endif  // JIT_cpu
#endif  // JIT

}  // namespace jittor
