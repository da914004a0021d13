#include <algorithm>
#include <limits>
#include "var.h"
#include "pranet_pool_op.h"

namespace jittor {

static int pool_out_size(int in, int k, int s, int p, int ceil_mode) {
    int num = in + 2 * p - k;
    ASSERT(num >= 0) << "pooling window" << k << "larger than the padded input" << in + 2 * p;
    int out = (ceil_mode ? (num + s - 1) / s : num / s) + 1;
    if (ceil_mode && (out - 1) * s >= in + p) out--;  // the last window must start inside the input or left pad
    return out;
}

#ifndef JIT
PranetPoolOp::PranetPoolOp(Var* x, int kind, int k, int s, int p, int ceil_mode, int c_off, int channels)
    : x(x), kind(kind), k(k), s(s), p(p), ceil_mode(ceil_mode), c_off(c_off), channels(channels) {
    ASSERT(x->dtype() == ns_float32) << "pranet_pool is float32 only";
    ASSERT(kind >= 0 && kind <= 2 && k >= 1 && s >= 1 && p >= 0 && 2 * p <= k) << "bad pooling parameters";
    flags.set(NodeFlags::_cpu);
    y = create_output(nullptr, ns_float32);
}

void PranetPoolOp::infer_shape() {
    ASSERTop(x->shape.size(), ==, 4);
    if (channels < 0) channels = x->shape[1] - c_off;
    ASSERT(c_off >= 0 && channels >= 1 && c_off + channels <= x->shape[1]) << "channel window outside x";
    y->set_shape(NanoVector(x->shape[0], channels, pool_out_size(x->shape[2], k, s, p, ceil_mode),
                            pool_out_size(x->shape[3], k, s, p, ceil_mode)));
}

void PranetPoolOp::jit_prepare(JK& jk) {
    jk << "«T:float32";
}

#else  // JIT
#ifdef JIT_cpu
void PranetPoolOp::jit_run() {
    const int N = x->shape[0], CX = x->shape[1], H = x->shape[2], W = x->shape[3];
    const int OH = y->shape[2], OW = y->shape[3];
    const float* xp = x->ptr<float32>();
    float* yp = y->ptr<float32>();
    #pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < channels; c++) {
            const float* in = xp + ((long)n * CX + c_off + c) * H * W;
            float* out = yp + ((long)n * channels + c) * OH * OW;
            for (int oh = 0; oh < OH; oh++) {
                const int h0 = oh * s - p, h1 = std::min(h0 + k, H + p);
                const int hs = std::max(h0, 0), he = std::min(h1, H);
                for (int ow = 0; ow < OW; ow++) {
                    const int w0 = ow * s - p, w1 = std::min(w0 + k, W + p);
                    const int ws = std::max(w0, 0), we = std::min(w1, W);
                    float v;
                    if (kind == 0) {
                        v = -std::numeric_limits<float>::infinity();
                        for (int i = hs; i < he; i++)
                            for (int j = ws; j < we; j++) v = std::max(v, in[i * W + j]);
                    } else {
                        v = 0.f;
                        for (int i = hs; i < he; i++)
                            for (int j = ws; j < we; j++) v += in[i * W + j];
                        const int cnt = kind == 1 ? (h1 - h0) * (w1 - w0) : (he - hs) * (we - ws);
                        v /= (float)cnt;
                    }
                    out[oh * OW + ow] = v;
                }
            }
        }
}
#endif  // JIT_cpu
#endif  // JIT

}  // namespace jittor
