#include <cmath>
#include <vector>
#include <omp.h>
#include "var.h"
#include "pranet_ln_bwd_op.h"

namespace jittor {

#ifndef JIT
PranetLnBwdOp::PranetLnBwdOp(Var* x, Var* dy, Var* mean, Var* rstd, Var* w)
    : x(x), dy(dy), mean(mean), rstd(rstd), w(w) {
    for (Var* v : {x, dy, mean, rstd, w}) ASSERT(v->dtype() == ns_float32) << "pranet_ln_bwd is float32 only";
    flags.set(NodeFlags::_cpu);
    dx = create_output(nullptr, ns_float32);
    dw = create_output(nullptr, ns_float32);
    db = create_output(nullptr, ns_float32);
}

void PranetLnBwdOp::infer_shape() {
    const int64 c = x->shape[x->shape.size() - 1];
    dx->set_shape(x->shape);
    dw->set_shape(NanoVector(c));
    db->set_shape(NanoVector(c));
}

void PranetLnBwdOp::jit_prepare(JK& jk) {
    jk << "«T:float32";
}

#else  // JIT
#ifdef JIT_cpu
void PranetLnBwdOp::jit_run() {
    const long C = x->shape[x->shape.size() - 1];
    const long R = x->num / C;
    const float* xp = x->ptr<float32>();
    const float* gp = dy->ptr<float32>();
    const float* mp = mean->ptr<float32>();
    const float* rp = rstd->ptr<float32>();
    const float* wp = w->ptr<float32>();
    float* dxp = dx->ptr<float32>();
    const int nthr = omp_get_max_threads();  // not "T": a JIT macro
    std::vector<double> pw((size_t)nthr * C, 0.0), pb((size_t)nthr * C, 0.0);
    #pragma omp parallel num_threads(nthr)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const long lo = R * t / nt, hi = R * (t + 1) / nt;
        double* aw = pw.data() + (size_t)t * C;
        double* ab = pb.data() + (size_t)t * C;
        for (long r = lo; r < hi; r++) {
            const float* p = xp + r * C;
            const float* g = gp + r * C;
            float* q = dxp + r * C;
            const double m = mp[r], rs = rp[r];
            double sg = 0, sgx = 0;
            for (long i = 0; i < C; i++) {
                const double xh = ((double)p[i] - m) * rs;
                const double gw = (double)g[i] * wp[i];
                sg += gw;
                sgx += gw * xh;
                aw[i] += (double)g[i] * xh;
                ab[i] += g[i];
            }
            sg /= C;
            sgx /= C;
            for (long i = 0; i < C; i++) {
                const double xh = ((double)p[i] - m) * rs;
                q[i] = (float)(rs * ((double)g[i] * wp[i] - sg - xh * sgx));
            }
        }
    }
    float* dwp = dw->ptr<float32>();
    float* dbp = db->ptr<float32>();
    for (long i = 0; i < C; i++) {
        double sw = 0, sb = 0;
        for (int t = 0; t < nthr; t++) { sw += pw[(size_t)t * C + i]; sb += pb[(size_t)t * C + i]; }
        dwp[i] = (float)sw;
        dbp[i] = (float)sb;
    }
}
#endif  // JIT_cpu
#endif  // JIT

}  // namespace jittor
