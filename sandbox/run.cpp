// async_run / run: one command to completion with stdin, capped output capture, a wall-clock
// timeout and a classification of which limit (if any) ended it.
#include <signal.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <array>
#include <chrono>
#include <cstring>

#include "sandbox/sandbox.h"

namespace qnext::sandbox {
namespace asio = boost::asio;

namespace {

// Keeps the first and the last `cap/2` bytes of a stream and counts what falls in between.
class Capture {
public:
    explicit Capture(std::uint64_t cap) : head_cap_(cap - cap / 2), tail_cap_(cap / 2) {}
    void add(const char* p, size_t n) {
        size_t h = std::min<size_t>(n, head_cap_ - std::min<size_t>(head_cap_, head_.size()));
        head_.append(p, h);
        p += h;
        n -= h;
        if (!n) return;
        tail_.append(p, n);
        if (tail_.size() > 2 * tail_cap_ + 65536) trim();
    }
    bool truncated() {
        trim();
        return dropped_ > 0;
    }
    std::string text() {
        trim();
        if (!dropped_) return head_ + tail_;
        return head_ + "\n[... qnext sandbox: " + std::to_string(dropped_) + " bytes of output truncated ...]\n" + tail_;
    }

private:
    void trim() {
        if (tail_.size() <= tail_cap_) return;
        size_t cut = tail_.size() - tail_cap_;
        dropped_ += cut;
        tail_.erase(0, cut);
    }
    size_t head_cap_, tail_cap_;
    std::string head_, tail_;
    std::uint64_t dropped_ = 0;
};

bool contains(const std::string& hay, const char* needle) { return hay.find(needle) != std::string::npos; }

// Which limit ended the run. rlimit hits are not reported by the kernel, so this combines the
// signal (SIGXCPU/SIGXFSZ, SIGKILL at the hard CPU limit) with the standard error messages that
// allocation/fork/write failures produce in libc-based programs and Python.
LimitHit classify(const RunResult& r, const Limits& lim, bool output_killed, LimitHit tree) {
    if (output_killed) return LimitHit::Output;
    if (tree == LimitHit::Cpu) return tree;   // qnext killed the sandbox at the tree CPU limit
    if (r.timed_out || r.cancelled) return LimitHit::None;
    if (r.signal == SIGXCPU || (r.signal == SIGKILL && lim.cpu_s > 0 && r.cpu_ms >= lim.cpu_s * 1000.0))
        return LimitHit::Cpu;
    if (r.signal == SIGXFSZ) return LimitHit::Fsize;
    if (r.exit_code == 0) return LimitHit::None;
    if (tree != LimitHit::None) return tree;   // the control group saw the memory or process limit reached
    // A shell reports a child killed by a signal as exit status 128+signal.
    const std::string& e = r.stderr_data;
    if (r.exit_code == 128 + SIGXCPU || contains(e, "CPU time limit exceeded")) return LimitHit::Cpu;
    if (r.exit_code == 128 + SIGXFSZ || contains(e, "File size limit exceeded") || contains(e, "File too large"))
        return LimitHit::Fsize;
    if (contains(e, "MemoryError") || contains(e, "Cannot allocate memory") || contains(e, "std::bad_alloc") ||
        contains(e, "out of memory") || contains(e, "Out of memory"))
        return LimitHit::Memory;
    if (contains(e, "No space left on device") || contains(e, "ENOSPC")) return LimitHit::Disk;
    if (contains(e, "fork: retry") || contains(e, "Cannot fork") || contains(e, "can't start new thread") ||
        contains(e, "fork: Resource temporarily unavailable") ||
        (contains(e, "BlockingIOError") && contains(e, "Resource temporarily unavailable")))
        return LimitHit::Pids;
    return LimitHit::None;
}

class Runner : public RunHandle, public std::enable_shared_from_this<Runner> {
public:
    Runner(asio::io_context& io, const Limits& lim, RunHandler h)
        : io_(io), lim_(lim), handler_(std::move(h)), out_(lim.output_bytes), err_(lim.output_bytes), timer_(io),
          drain_(io) {}

    void start(const Policy& policy, RunRequest req) {
        start_ = std::chrono::steady_clock::now();
        try {
            proc_ = Process::spawn(io_, policy, req);
        } catch (const ExecError& e) {
            RunResult r;
            r.exit_code = 127;
            r.stderr_data = std::string(e.what()) + "\n";
            r.wall_ms = elapsed_ms();
            asio::post(io_, [h = std::move(handler_), r] { h(nullptr, r); });
            finished_ = true;
            return;
        } catch (...) {
            asio::post(io_, [h = std::move(handler_), ep = std::current_exception()] { h(ep, RunResult{}); });
            finished_ = true;
            return;
        }
        auto self = shared_from_this();
        stdin_ = std::move(req.stdin_data);
        if (stdin_.empty()) {
            proc_->stdin_pipe().close();
        } else {
            asio::async_write(proc_->stdin_pipe(), asio::buffer(stdin_),
                              [self](const boost::system::error_code&, size_t) { self->proc_->stdin_pipe().close(); });
        }
        read(proc_->stdout_pipe(), out_);
        read(proc_->stderr_pipe(), err_);
        if (lim_.timeout_s > 0) {
            timer_.expires_after(std::chrono::microseconds(std::int64_t(lim_.timeout_s * 1e6)));
            timer_.async_wait([self](const boost::system::error_code& ec) {
                if (ec || self->exited_) return;
                self->timed_out_ = true;
                self->proc_->kill();
            });
        }
        proc_->async_wait([self](const ExitStatus& e) {
            self->exited_ = true;
            self->exit_ = e;
            self->timer_.cancel();
            if (self->open_streams_ == 0) return self->finish();
            // Every sandboxed process is gone, so the pipes hold only buffered data; a writer that
            // escaped into another process (fd leaked by an unrelated spawn) must not hang us.
            self->drain_.expires_after(std::chrono::milliseconds(250));
            self->drain_.async_wait([self](const boost::system::error_code&) { self->finish(); });
        });
    }

    void cancel() override {
        auto self = shared_from_this();
        asio::post(io_, [self] {
            if (self->finished_ || self->exited_ || !self->proc_) return;
            self->cancelled_ = true;
            self->proc_->kill();
        });
    }

private:
    double elapsed_ms() const {
        return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count();
    }

    void read(boost::process::async_pipe& pipe, Capture& cap) {
        auto self = shared_from_this();
        auto* buf = pipe.native_source() == proc_->stdout_pipe().native_source() ? &out_buf_ : &err_buf_;
        pipe.async_read_some(asio::buffer(*buf), [self, &pipe, &cap, buf](const boost::system::error_code& ec,
                                                                         size_t n) {
            if (n) {
                cap.add(buf->data(), n);
                self->total_out_ += n;
                if (self->total_out_ > self->lim_.output_hard_bytes && !self->output_killed_ && !self->exited_) {
                    self->output_killed_ = true;
                    self->proc_->kill();
                }
            }
            if (ec || self->finished_) {
                if (--self->open_streams_ == 0 && self->exited_) self->finish();
                return;
            }
            self->read(pipe, cap);
        });
    }

    void finish() {
        if (finished_) return;
        finished_ = true;
        timer_.cancel();
        drain_.cancel();
        boost::system::error_code ignore;
        proc_->stdout_pipe().close(ignore);
        proc_->stderr_pipe().close(ignore);
        proc_->stdin_pipe().close(ignore);
        RunResult r;
        r.exit_code = exit_.exit_code;
        r.signal = exit_.signal;
        r.timed_out = timed_out_;
        r.cancelled = cancelled_;
        r.cpu_ms = exit_.cpu_ms;
        r.wall_ms = elapsed_ms();
        r.truncated = out_.truncated() || err_.truncated();
        r.stdout_data = out_.text();
        r.stderr_data = err_.text();
        r.limit = classify(r, lim_, output_killed_, exit_.tree_limit);
        r.memory_peak_bytes = exit_.memory_peak_bytes;
        r.enforcement = exit_.enforcement;
        r.not_copied_back = exit_.not_copied_back;
        r.neutralized = exit_.neutralized;
        if (!r.neutralized.empty()) {
            std::string note = "[qnext sandbox: removed set-user-ID/set-group-ID bits or file capabilities from";
            for (size_t i = 0; i < r.neutralized.size() && i < 20; ++i) note += " " + r.neutralized[i];
            if (r.neutralized.size() > 20) note += " and " + std::to_string(r.neutralized.size() - 20) + " more";
            r.stderr_data += note + "]\n";
        }
        if (!exit_.not_copied_in.empty()) {
            std::string note = "[qnext sandbox: not copied into the sandbox's workspace:";
            for (size_t i = 0; i < exit_.not_copied_in.size() && i < 20; ++i) note += " " + exit_.not_copied_in[i];
            r.stderr_data += note + "]\n";
        }
        if (!r.not_copied_back.empty()) {
            std::string note = "[qnext sandbox: not copied back to the host workspace:";
            for (size_t i = 0; i < r.not_copied_back.size() && i < 20; ++i) note += " " + r.not_copied_back[i];
            if (r.not_copied_back.size() > 20) note += " and " + std::to_string(r.not_copied_back.size() - 20) + " more";
            r.stderr_data += note + "]\n";
        }
        if (!exit_.sweep_incomplete.empty())
            r.stderr_data += "[qnext sandbox: workspace not fully checked for set-user-ID files: " +
                             exit_.sweep_incomplete + "]\n";
        auto h = std::move(handler_);
        h(nullptr, std::move(r));
    }

    asio::io_context& io_;
    Limits lim_;
    RunHandler handler_;
    std::shared_ptr<Process> proc_;
    Capture out_, err_;
    std::array<char, 65536> out_buf_{}, err_buf_{};
    std::string stdin_;
    asio::steady_timer timer_, drain_;
    std::chrono::steady_clock::time_point start_;
    ExitStatus exit_;
    std::uint64_t total_out_ = 0;
    int open_streams_ = 2;
    bool exited_ = false, finished_ = false, timed_out_ = false, cancelled_ = false, output_killed_ = false;
};

}  // namespace

std::shared_ptr<RunHandle> async_run(asio::io_context& io, const Policy& policy, RunRequest request,
                                     RunHandler handler) {
    const Limits lim = request.limits.value_or(policy.limits);
    auto runner = std::make_shared<Runner>(io, lim, std::move(handler));
    runner->start(policy, std::move(request));
    return runner;
}

RunResult run(const Policy& policy, const RunRequest& request) {
    asio::io_context io;
    std::exception_ptr error;
    RunResult result;
    async_run(io, policy, request, [&](std::exception_ptr e, RunResult r) {
        error = e;
        result = std::move(r);
    });
    io.run();
    if (error) std::rethrow_exception(error);
    return result;
}

}  // namespace qnext::sandbox
