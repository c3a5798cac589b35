// kernels/cpu/qmatmul_vnni.cpp: the integer kernels of qmatmul_impl.h with AVX-512 VNNI (vpdpbusd on 256-bit
// vectors). Compiled with -mavx512f -mavx512vl -mavx512vnni -mavx2 -mfma -mf16c; called only after the
// run-time CPU check (backend.cpp: avx512_vnni).
#include "kernels/cpu/qmatmul_impl.h"

namespace qnext::kern::cpu {

void qmatmul_rows_vnni(const Q8Rows& x, int64_t t0, int64_t nt, const void* w, DType wt, int64_t n0, int64_t n1,
                       float* y, int64_t ldy, bool accumulate) {
    qimpl::qmatmul_rows<true>(x, t0, nt, w, wt, n0, n1, y, ldy, accumulate);
}

}  // namespace qnext::kern::cpu
