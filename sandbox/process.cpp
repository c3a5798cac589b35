// Process: spawn the sandbox with Boost.Process (the exec-setup hook runs child.cpp), then follow
// its status pipe on the io_context.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/process/child.hpp>
#include <boost/process/exe.hpp>
#include <boost/process/extend.hpp>
#include <boost/process/io.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "sandbox/cgroup.h"
#include "sandbox/plan.h"
#include "sandbox/sandbox.h"
#include "sandbox/sweep.h"
#include "sandbox/userns.h"
#include "sandbox/workspace_fs.h"

namespace qnext::sandbox {
namespace bp = boost::process;
namespace asio = boost::asio;
using detail::Fd;
using detail::StatusMsg;

namespace {

void ignore_sigpipe_once() {
    static std::once_flag once;
    std::call_once(once, [] { ::signal(SIGPIPE, SIG_IGN); });
}

// Boost.Process initializer: after fork (stdio already redirected), hand over to the sandbox code.
struct SandboxHook : bp::extend::handler {
    detail::Plan* plan;
    explicit SandboxHook(detail::Plan* p) : plan(p) {}
    template <class Executor>
    void on_exec_setup(Executor&) const {
        detail::child_main(*plan);
    }
};

Enforcement describe_limits(const Limits& lim, bool iso) {
    Enforcement e;
    e.process_memory_bytes = lim.memory_bytes;
    e.process_cpu_s = lim.cpu_s;
    e.process_pids = iso ? lim.max_processes : 0;   // RLIMIT_NPROC counts per user: only in the user namespace
    e.file_bytes = lim.max_file_bytes;
    e.open_files = lim.max_open_files;
    if (iso) {
        e.tmp_bytes = lim.tmp_bytes;
        if (lim.disk_bytes) {
            e.workspace = "tmpfs";
            e.disk_bytes = lim.disk_bytes;
            e.inodes = lim.max_inodes;
        }
    }
    return e;
}

ExitStatus exit_status_from(const std::optional<int>& command_status, const std::optional<StatusMsg>& done) {
    ExitStatus e;
    std::optional<int> st = command_status;
    if (!st && done) st = done->status;
    if (!st) {
        e.signal = SIGKILL;   // the monitor itself was killed
    } else if (WIFEXITED(*st)) {
        e.exit_code = WEXITSTATUS(*st);
    } else if (WIFSIGNALED(*st)) {
        e.signal = WTERMSIG(*st);
    }
    if (done) e.cpu_ms = double(done->cpu_us) / 1000.0;
    return e;
}

}  // namespace

struct Process::Impl {
    explicit Impl(asio::io_context& io) : io(io), in(io), out(io), err(io), status(io), cpu_timer(io) {}
    ~Impl() {
        if (!finished) {
            control.reset();   // the monitor sees EOF and kills the sandbox
            std::error_code ec;
            if (child.valid()) child.wait(ec);
            if (cgroup) cgroup->kill_all();
            if (wsfs) wsfs->copy_back();   // what a long-lived helper wrote still reaches the host
        }
    }

    asio::io_context& io;
    bp::async_pipe in, out, err;
    bp::child child;
    asio::posix::stream_descriptor status;
    Fd control;
    StatusMsg buf;
    size_t have = 0;
    std::optional<int> command_status;
    std::optional<StatusMsg> done;
    bool finished = false;
    ExitStatus exit;
    std::vector<std::function<void(const ExitStatus&)>> waiters;
    std::filesystem::path workspace;   // canonical host path, swept when the sandbox is gone
    long long started_ns = 0;
    std::unique_ptr<detail::Cgroup> cgroup;        // whole-tree limits (null without cgroups)
    std::unique_ptr<detail::WorkspaceFs> wsfs;     // the quota tmpfs (null: the host directory is bound)
    asio::steady_timer cpu_timer;                  // polls the group's CPU time against the tree limit
    double tree_cpu_limit_ms = 0;
    bool tree_cpu_hit = false;
    Enforcement enforcement;
    std::vector<std::string> not_copied_in;

    void handle(const StatusMsg& m) {
        if (m.kind == StatusMsg::CommandExited) command_status = m.status;
        else if (m.kind == StatusMsg::SandboxDone) done = m;
    }

    void on_eof() {
        status.close();
        std::error_code ec;
        if (child.valid()) child.wait(ec);
        control.reset();
        cpu_timer.cancel();
        exit = exit_status_from(command_status, done);
        exit.enforcement = enforcement;
        exit.not_copied_in = not_copied_in;
        if (cgroup) {
            cgroup->kill_all();   // nothing should be left; a process that is must not see its files copied
            const detail::Cgroup::Stats st = cgroup->stats();
            exit.memory_peak_bytes = st.memory_peak;
            exit.cpu_ms = std::max(exit.cpu_ms, st.cpu_ms);   // includes processes init did not reap (killed)
            if (tree_cpu_hit) exit.tree_limit = LimitHit::Cpu;
            else if (st.oom_kills > 0 || (st.memory_max_hits > 0 && exit.signal == SIGKILL)) exit.tree_limit = LimitHit::Memory;
            else if (st.pids_max_hits > 0) exit.tree_limit = LimitHit::Pids;
            cgroup.reset();
        }
        if (wsfs) {
            exit.not_copied_back = wsfs->copy_back().skipped;
            wsfs.reset();
        }
        if (!workspace.empty()) {
            detail::SweepReport sweep = detail::sweep_workspace(workspace, started_ns);
            exit.neutralized = std::move(sweep.fixed);
            exit.sweep_incomplete = std::move(sweep.incomplete);
        }
        finished = true;
        auto ws = std::move(waiters);
        for (auto& w : ws) w(exit);
    }

    void send(char c) {
        if (finished || control.get() < 0) return;
        ssize_t n = ::write(control.get(), &c, 1);
        (void)n;   // EPIPE: the monitor is already gone
    }
};

namespace {

// The tree CPU limit: qnext reads the group's CPU time every 100 ms and kills the sandbox past the limit.
void poll_cpu(const std::shared_ptr<Process>& self) {
    auto& I = self->impl();
    std::weak_ptr<Process> weak = self;
    I.cpu_timer.expires_after(std::chrono::milliseconds(100));
    I.cpu_timer.async_wait([weak](const boost::system::error_code& ec) {
        auto s = weak.lock();
        if (!s || ec) return;
        auto& J = s->impl();
        if (J.finished || !J.cgroup) return;
        if (J.cgroup->cpu_ms() > J.tree_cpu_limit_ms) {
            J.tree_cpu_hit = true;
            J.send('K');
            return;
        }
        poll_cpu(s);
    });
}

void read_status(const std::shared_ptr<Process>& self) {
    auto& I = self->impl();
    std::weak_ptr<Process> weak = self;
    I.status.async_read_some(
        asio::buffer(reinterpret_cast<char*>(&I.buf) + I.have, sizeof(StatusMsg) - I.have),
        [weak](const boost::system::error_code& ec, size_t n) {
            auto s = weak.lock();
            if (!s) return;
            auto& J = s->impl();
            if (ec) {
                if (!J.finished) J.on_eof();
                return;
            }
            J.have += n;
            if (J.have == sizeof(StatusMsg)) {
                J.handle(J.buf);
                J.have = 0;
            }
            read_status(s);
        });
}

std::string describe_setup_failure(const detail::Plan& plan, const StatusMsg& m) {
    std::string what = m.step >= 0 && size_t(m.step) < plan.steps.size() ? plan.steps[size_t(m.step)].what
                                                                         : detail::stage_name(m.step);
    return "sandbox: cannot set up isolation: " + what + ": " + std::strerror(m.err) +
           " (refusing to run the command; use --sandbox none to run it without isolation)";
}

}  // namespace

Process::Process(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Process::~Process() = default;

boost::process::async_pipe& Process::stdin_pipe() { return impl_->in; }
boost::process::async_pipe& Process::stdout_pipe() { return impl_->out; }
boost::process::async_pipe& Process::stderr_pipe() { return impl_->err; }
void Process::terminate() { impl_->send('T'); }
void Process::kill() { impl_->send('K'); }
bool Process::running() const { return !impl_->finished; }
const Enforcement& Process::enforcement() const { return impl_->enforcement; }

void Process::async_wait(std::function<void(const ExitStatus&)> handler) {
    if (impl_->finished) {
        asio::post(impl_->io, [h = std::move(handler), e = impl_->exit] { h(e); });
        return;
    }
    impl_->waiters.push_back(std::move(handler));
}

std::shared_ptr<Process> Process::spawn(asio::io_context& io, const Policy& policy, const SpawnRequest& req) {
    ignore_sigpipe_once();
    const Limits lim = req.limits.value_or(policy.limits);
    detail::Plan plan = detail::make_plan(policy, req, lim);
    const bool iso = policy.mode == Mode::Isolated;
    if (!iso)
        std::fprintf(stderr, "qnext: warning: running '%s' WITHOUT sandbox isolation (sandbox mode \"none\")\n",
                     req.argv[0].c_str());

    auto impl = std::make_unique<Impl>(io);
    impl->enforcement = describe_limits(lim, iso);
    const std::uint64_t tree_memory = lim.memory_bytes ? lim.memory_bytes + (iso ? lim.tmp_bytes + lim.disk_bytes : 0) : 0;
    const std::uint32_t tree_pids = lim.max_processes + 2;   // + the sandbox's monitor and init
    std::string no_cgroup;
    impl->cgroup = detail::Cgroup::create(tree_memory, tree_pids, &no_cgroup);
    if (impl->cgroup) {
        Enforcement& e = impl->enforcement;
        e.tree = impl->cgroup->backend();
        e.tree_memory_bytes = tree_memory;
        e.tree_pids = tree_pids;
        if (impl->cgroup->cpu_accounting() && lim.cpu_s > 0) e.tree_cpu_s = lim.cpu_s;
        impl->tree_cpu_limit_ms = e.tree_cpu_s * 1000.0;
        plan.cgroup_fds = impl->cgroup->join_fds();
    } else {
        impl->enforcement.tree_reason = no_cgroup;
        static std::once_flag notice;
        std::call_once(notice, [&] {
            std::fprintf(stderr,
                         "qnext: notice: sandbox memory, process and CPU limits hold per process only (rlimits), not "
                         "for the sandbox as a whole: %s\n",
                         impl->enforcement.tree_reason.c_str());
        });
    }
    Fd userns, ws_tree;
    if (iso) {
        const bool root = geteuid() == 0;
        userns = detail::make_userns(policy.uid, root ? policy.root_host_uid : geteuid(), policy.gid,
                                     root ? policy.root_host_gid : getegid());
        plan.userns_fd = userns.get();
        int ws_fd = -1;
        if (plan.workspace_tmpfs) {
            impl->wsfs = std::make_unique<detail::WorkspaceFs>(std::filesystem::canonical(req.workspace), lim.disk_bytes,
                                                               lim.max_inodes, userns.get(), policy.root_host_uid,
                                                               policy.root_host_gid);
            impl->not_copied_in = impl->wsfs->copied_in().skipped;
            ws_fd = impl->wsfs->mount_fd();
        } else if (root) {
            ws_tree = detail::idmapped_workspace(std::filesystem::canonical(req.workspace), policy.root_host_uid,
                                                 policy.root_host_gid);
            ws_fd = ws_tree.get();
        }
        for (auto& s : plan.steps)
            if (s.kind == detail::FsStep::MoveMount) s.fd = ws_fd;
    }
    int sp[2], cp[2];
    if (pipe2(sp, O_CLOEXEC) < 0) throw SandboxError(std::string("sandbox: pipe: ") + std::strerror(errno));
    Fd status_r(sp[0]), status_w(sp[1]);
    if (pipe2(cp, O_CLOEXEC) < 0) throw SandboxError(std::string("sandbox: pipe: ") + std::strerror(errno));
    Fd control_r(cp[0]), control_w(cp[1]);
    plan.status_fd = status_w.get();
    plan.control_fd = control_r.get();

    impl->workspace = std::filesystem::canonical(req.workspace);
    impl->started_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::system_clock::now().time_since_epoch()).count() - 1000000000LL;
    try {
        // Returns once the command has been exec'd or a sandbox stage has failed: every process
        // holds Boost's close-on-exec error pipe until then (see child.cpp).
        impl->child = bp::child(bp::exe = plan.exec_candidates[0], bp::std_in<impl->in, bp::std_out> impl->out,
                                bp::std_err > impl->err, SandboxHook(&plan));
    } catch (const bp::process_error& e) {
        throw SandboxError(std::string("sandbox: cannot start the sandbox process: ") + e.what());
    }
    status_w.reset();
    control_r.reset();
    userns.reset();
    ws_tree.reset();
    if (impl->cgroup) impl->cgroup->close_join_fds();
    fcntl(control_w.get(), F_SETFL, O_NONBLOCK);

    // Setup and exec failures have already been written to the status pipe.
    fcntl(status_r.get(), F_SETFL, O_NONBLOCK);
    std::optional<StatusMsg> failure;
    for (;;) {
        StatusMsg m;
        ssize_t n = ::read(status_r.get(), &m, sizeof m);
        if (n < 0 && errno == EINTR) continue;
        if (n != ssize_t(sizeof m)) break;   // EAGAIN (still running) or EOF
        if (m.kind == StatusMsg::SetupFailed || m.kind == StatusMsg::ExecFailed) {
            if (!failure) failure = m;
        } else {
            impl->handle(m);
        }
    }
    if (failure) {
        control_w.reset();   // make sure nothing is left; then reap the monitor
        std::error_code ec;
        impl->child.wait(ec);
        impl->finished = true;
        impl->wsfs.reset();   // nothing ran: nothing to copy back
        if (failure->kind == StatusMsg::ExecFailed)
            throw ExecError("sandbox: cannot execute '" + req.argv[0] + "': " + std::strerror(failure->err) +
                                (req.argv[0].find('/') == std::string::npos ? " (searched PATH inside the sandbox)"
                                                                            : ""),
                            failure->err);
        throw SandboxError(describe_setup_failure(plan, *failure));
    }
    fcntl(status_r.get(), F_SETFL, 0);
    impl->status.assign(status_r.release());
    impl->control = std::move(control_w);
    const bool poll = impl->cgroup && impl->tree_cpu_limit_ms > 0;
    auto proc = std::make_shared<Process>(std::move(impl));
    read_status(proc);
    if (poll) poll_cpu(proc);
    return proc;
}

std::string isolation_unavailable_reason() {
    // Probe once per process by running `true` in a default sandbox on a scratch workspace: this
    // exercises every step (user namespace, idmapped workspace as root, mounts, seccomp).
    static std::mutex mu;
    static std::optional<std::string> cached;
    std::lock_guard<std::mutex> lock(mu);
    if (cached) return *cached;
    std::string reason = detail::probe_isolation();
    if (reason.empty()) {
        std::error_code ec;
        std::string tmpl = (std::filesystem::temp_directory_path(ec) / "qnext-probe-XXXXXX").string();
        if (!mkdtemp(tmpl.data())) {
            reason = "sandbox: cannot create a scratch directory for the isolation probe";
        } else {
            try {
                RunRequest req;
                req.argv = {"true"};
                req.workspace = tmpl;
                RunResult r = run(default_policy(), req);
                if (r.exit_code != 0) reason = "sandbox: `true` failed inside the sandbox: " + r.stderr_data;
            } catch (const std::exception& e) {
                reason = e.what();
            }
            std::filesystem::remove_all(tmpl, ec);
        }
    }
    cached = reason;
    return reason;
}

}  // namespace qnext::sandbox
