// kernels/cpu/thread_pool.h: the worker pool of the fast CPU kernels. Persistent workers wait for a
// job by spinning briefly, then sleeping on a futex (C++20 atomic wait), so that a shared,
// oversubscribed machine does not lose whole scheduler slices at every join the way OpenMP's default
// busy-wait barrier does (measured with bench_kernels). The calling thread takes part as worker 0.
// Calls from inside a job run serially (no nesting). Covered by tests/kernels/test_ops.cpp (every
// fast case runs through it; ThreadPool.* cases).
#pragma once
#include <cstdint>
#include <functional>

namespace qnext::kern::cpu {

int pool_threads();          // workers including the caller (>= 1)
void set_pool_threads(int n);  // rebuilds the pool; n >= 1

// fn(begin, end, worker) over [0, n) split into contiguous near-equal ranges, one per worker.
void parallel_ranges(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn);
// fn(i, worker) for every i in [0, n), handed out one by one (uneven task costs).
void parallel_dynamic(int64_t n, const std::function<void(int64_t, int)>& fn);

}  // namespace qnext::kern::cpu
