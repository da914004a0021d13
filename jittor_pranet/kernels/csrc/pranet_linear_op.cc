#include "var.h"
#include "pranet_linear_op.h"
#include "pranet_dnnl.h"

namespace jittor {

#ifndef JIT
PranetLinearOp::PranetLinearOp(vector<Var*>&& inputs, int has_bias, int has_res) : has_bias(has_bias), has_res(has_res) {
    ASSERT((int)inputs.size() == 2 + (has_bias ? 1 : 0) + (has_res ? 1 : 0)) << "pranet_linear: wrong input count";
    for (Var* v : inputs) ASSERT(v->dtype() == ns_float32) << "pranet_linear is float32 only";
    x = inputs[0];
    w = inputs[1];
    b = has_bias ? inputs[2] : nullptr;
    res = has_res ? inputs.back() : nullptr;
    flags.set(NodeFlags::_cpu);
    y = create_output(nullptr, ns_float32);
}

void PranetLinearOp::infer_shape() {
    ASSERTop(w->shape.size(), ==, 2);
    ASSERT(x->shape.size() >= 1 && x->shape[x->shape.size() - 1] == w->shape[1]) << "x's last dim must be w's in-features";
    if (b) ASSERTop(b->num, ==, w->shape[0]);
    NanoVector out;
    for (int i = 0; i + 1 < (int)x->shape.size(); i++) out.push_back(x->shape[i]);
    out.push_back(w->shape[0]);
    if (res) ASSERT(res->shape == out) << "residual must have the output's shape";
    y->set_shape(out);
}

void PranetLinearOp::jit_prepare(JK& jk) {
    jk << "«T:float32";
}

#else  // JIT
#ifdef JIT_cpu
void PranetLinearOp::jit_run() {
    const int K = w->shape[1], O = w->shape[0];
    const long M = x->num / K;
    float* yp = y->ptr<float32>();
    ASSERTop(0, ==, dnnl_sgemm('N', 'T', M, O, K, 1.f, x->ptr<float32>(), K, w->ptr<float32>(), K, 0.f, yp, O));
    if (!b && !res) return;
    const float* bp = b ? b->ptr<float32>() : nullptr;
    const float* rp = res ? res->ptr<float32>() : nullptr;
    #pragma omp parallel for schedule(static)
    for (long m = 0; m < M; m++) {
        float* row = yp + m * O;
        const float* r = rp ? rp + m * O : nullptr;
        if (bp && r) for (int o = 0; o < O; o++) row[o] = r[o] + (row[o] + bp[o]);
        else if (bp) for (int o = 0; o < O; o++) row[o] += bp[o];
        else for (int o = 0; o < O; o++) row[o] = r[o] + row[o];
    }
}
#endif  // JIT_cpu
#endif  // JIT

}  // namespace jittor
