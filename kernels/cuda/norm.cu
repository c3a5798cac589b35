// CUDA RMSNorm kernel (owned by the kernels work).
