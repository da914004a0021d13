#include <cstring>
#include "var.h"
#include "pranet_cat_gemm_op.h"
#include "pranet_dnnl.h"

namespace jittor {

#ifndef JIT
PranetCatGemmOp::PranetCatGemmOp(vector<Var*>&& inputs, NanoVector offs, int relu, int has_res)
    : offs(offs), relu(relu) {
    const int k = offs.size();
    ASSERT(k >= 1 && (int)inputs.size() == k + 2 + (has_res ? 1 : 0))
        << "pranet_cat_gemm takes k inputs, w, bias (and a residual) for k = len(offs)";
    for (Var* v : inputs) ASSERT(v->dtype() == ns_float32) << "pranet_cat_gemm is float32 only";
    xs.assign(inputs.begin(), inputs.begin() + k);
    w = inputs[k];
    b = inputs[k + 1];
    res = has_res ? inputs[k + 2] : nullptr;
    flags.set(NodeFlags::_cpu);
    y = create_output(nullptr, ns_float32);
}

void PranetCatGemmOp::infer_shape() {
    const int k = offs.size();
    ASSERTop(w->shape.size(), ==, 4);
    ASSERT(w->shape[2] == 1 && w->shape[3] == 1 && w->shape[1] % k == 0) << "1x1 weights over k equal pieces";
    const int width = w->shape[1] / k;
    Var* x0 = xs[0];
    ASSERTop(x0->shape.size(), ==, 4);
    for (int i = 0; i < k; i++) {
        Var* xi = xs[i];
        ASSERT(xi->shape.size() == 4 && xi->shape[0] == x0->shape[0] && xi->shape[2] == x0->shape[2] &&
               xi->shape[3] == x0->shape[3]) << "pieces must share batch and spatial size";
        ASSERT(offs[i] >= 0 && offs[i] + width <= xi->shape[1]) << "channel window outside piece" << i;
    }
    ASSERTop(b->shape[0], ==, w->shape[0]);
    NanoVector out(x0->shape[0], w->shape[0], x0->shape[2], x0->shape[3]);
    if (res) ASSERT(res->shape == out) << "residual must have the output's shape";
    y->set_shape(out);
}

void PranetCatGemmOp::jit_prepare(JK& jk) {
    jk << "«T:float32";
}

#else  // JIT
#ifdef JIT_cpu
using namespace pranet_dnnl;

void PranetCatGemmOp::jit_run() {
    const int k = offs.size();
    const int N = y->shape[0], O = y->shape[1], K = w->shape[1], width = K / k;
    const long hw = (long)y->shape[2] * y->shape[3];
    vector<const float*> base(k);
    vector<long> cstride(k);
    for (int i = 0; i < k; i++) {
        base[i] = xs[i]->ptr<float32>() + (long)offs[i] * hw;
        cstride[i] = (long)xs[i]->shape[1] * hw;
    }
    float* buf = (float*)scratch(6, (size_t)K * hw * sizeof(float));
    const float* wp = w->ptr<float32>();
    const float* bp = b->ptr<float32>();
    const float* rp = res ? res->ptr<float32>() : nullptr;
    float* yp = y->ptr<float32>();
    for (int n = 0; n < N; n++) {
        // one image's concatenated channels, then one GEMM (K pieces' GEMMs with beta=1 would re-read y)
        #pragma omp parallel for schedule(static)
        for (int r = 0; r < K; r++) {
            const int i = r / width, c = r % width;
            std::memcpy(buf + (long)r * hw, base[i] + n * cstride[i] + (long)c * hw, hw * sizeof(float));
        }
        float* yn = yp + (size_t)n * O * hw;
        ASSERTop(0, ==, dnnl_sgemm('N', 'N', O, hw, K, 1.f, wp, K, buf, hw, 0.f, yn, hw));
        bias_act(yn, bp, rp ? rp + (size_t)n * O * hw : nullptr, O, O, hw, relu);
    }
}
#endif  // JIT_cpu
#endif  // JIT

}  // namespace jittor
