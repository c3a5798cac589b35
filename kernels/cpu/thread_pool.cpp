// kernels/cpu/thread_pool.cpp: see thread_pool.h. One job at a time (the kernels are called from one
// engine thread; a mutex serialises concurrent callers). A job is published by bumping `generation_`;
// workers spin on it for ~kSpin polls, then block in atomic::wait; completion is counted down in
// `pending_` which the caller waits on the same way.
#include "kernels/cpu/thread_pool.h"

#include <immintrin.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace qnext::kern::cpu {
namespace {

constexpr int kSpin = 2000;  // polls (with pause) before sleeping: ~20-50 us

thread_local bool t_in_job = false;

template <class T, class Pred>
void spin_then_wait(const std::atomic<T>& a, T seen, Pred done) {
    for (int i = 0; i < kSpin; ++i) {
        if (done(a.load(std::memory_order_acquire))) return;
        _mm_pause();
    }
    for (T v = a.load(std::memory_order_acquire); !done(v); v = a.load(std::memory_order_acquire)) a.wait(v);
    (void)seen;
}

class Pool {
public:
    explicit Pool(int n) : n_(n) {
        for (int w = 1; w < n_; ++w) workers_.emplace_back([this, w] { loop(w); });
    }
    ~Pool() {
        stop_.store(true);
        generation_.fetch_add(1, std::memory_order_release);
        generation_.notify_all();
        for (auto& t : workers_) t.join();
    }
    int size() const { return n_; }

    // Runs job(worker) on every worker (caller = 0) and returns when all are done.
    void run(const std::function<void(int)>& job) {
        std::lock_guard<std::mutex> lock(mu_);
        job_ = &job;
        pending_.store(n_ - 1, std::memory_order_release);
        generation_.fetch_add(1, std::memory_order_release);
        generation_.notify_all();
        t_in_job = true;
        job(0);
        t_in_job = false;
        spin_then_wait(pending_, 0, [](int v) { return v == 0; });
        job_ = nullptr;
    }

private:
    void loop(int w) {
        uint64_t seen = 0;
        for (;;) {
            spin_then_wait(generation_, seen, [seen](uint64_t v) { return v != seen; });
            seen = generation_.load(std::memory_order_acquire);
            if (stop_.load()) return;
            t_in_job = true;
            (*job_)(w);
            t_in_job = false;
            if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
        }
    }

    const int n_;
    std::vector<std::thread> workers_;
    std::mutex mu_;
    const std::function<void(int)>* job_ = nullptr;
    std::atomic<uint64_t> generation_{0};
    std::atomic<int> pending_{0};
    std::atomic<bool> stop_{false};
};

int default_threads() {
    for (const char* var : {"QNEXT_THREADS", "OMP_NUM_THREADS"}) {
        if (const char* v = std::getenv(var)) {
            const int n = std::atoi(v);
            if (n >= 1) return n;
        }
    }
    const unsigned hc = std::thread::hardware_concurrency();
    return hc ? static_cast<int>(hc) : 1;
}

std::mutex g_pool_mu;
std::unique_ptr<Pool> g_pool;

Pool& pool() {
    std::lock_guard<std::mutex> lock(g_pool_mu);
    if (!g_pool) g_pool = std::make_unique<Pool>(default_threads());
    return *g_pool;
}

}  // namespace

int pool_threads() { return pool().size(); }

void set_pool_threads(int n) {
    std::lock_guard<std::mutex> lock(g_pool_mu);
    if (g_pool && g_pool->size() == n) return;
    g_pool.reset();
    g_pool = std::make_unique<Pool>(n);
}

void parallel_ranges(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn) {
    if (n <= 0) return;
    Pool& p = pool();
    if (t_in_job || p.size() == 1 || n == 1) {
        fn(0, n, 0);
        return;
    }
    const int64_t parts = std::min<int64_t>(p.size(), n);
    p.run([&](int w) {
        if (w >= parts) return;
        const int64_t b = n * w / parts, e = n * (w + 1) / parts;
        if (b < e) fn(b, e, w);
    });
}

void parallel_dynamic(int64_t n, const std::function<void(int64_t, int)>& fn) {
    if (n <= 0) return;
    Pool& p = pool();
    if (t_in_job || p.size() == 1 || n == 1) {
        for (int64_t i = 0; i < n; ++i) fn(i, 0);
        return;
    }
    std::atomic<int64_t> next{0};
    p.run([&](int w) {
        for (int64_t i = next.fetch_add(1, std::memory_order_relaxed); i < n; i = next.fetch_add(1, std::memory_order_relaxed))
            fn(i, w);
    });
}

}  // namespace qnext::kern::cpu
