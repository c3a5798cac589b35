// Backend selection lives here (owned by the kernels work).
