// Sandbox API: policies, result fields, stdin/stdout/stderr, async runs, cancellation, the
// interactive Process, parent safety (fds, zombies), unprivileged operation and Mode::None.
#include <fcntl.h>
#include <grp.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <fstream>

#include <gtest/gtest.h>

#include "tests/sandbox/sandbox_test_util.h"

namespace qnext::sandbox::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

class Api : public ::testing::Test {
protected:
    void SetUp() override {
        const std::string reason = isolation_unavailable_reason();
        if (!reason.empty()) GTEST_SKIP() << "isolation unavailable here: " << reason;
    }
    TempDir ws;
    Policy policy = test_policy();
};

TEST(Policy, DefaultFileMatchesBuiltIn) {
    EXPECT_EQ(load_policy(fs::path(QNEXT_SOURCE_DIR) / "configs/policies/default.json"), default_policy());
}

TEST(Policy, EveryShippedPolicyLoads) {
    int n = 0;
    for (const auto& e : fs::directory_iterator(fs::path(QNEXT_SOURCE_DIR) / "configs/policies")) {
        EXPECT_NO_THROW(load_policy(e.path())) << e.path();
        ++n;
    }
    EXPECT_GE(n, 2);
}

TEST(Policy, PartialOverrideKeepsDefaults) {
    Policy p = Policy::from_json(json::parse(R"({"name":"t","limits":{"timeout_s":3,"memory_mb":128}})"));
    EXPECT_EQ(p.limits.timeout_s, 3);
    EXPECT_EQ(p.limits.memory_bytes, 128ull << 20);
    EXPECT_EQ(p.limits.cpu_s, default_policy().limits.cpu_s);
    EXPECT_EQ(p.ro_paths, default_policy().ro_paths);
    EXPECT_EQ(Policy::from_json(p.to_json()), p);   // round trip
}

TEST(Policy, RejectsBadInput) {
    for (const char* bad : {R"({"bogus":1})", R"({"limits":{"memory_mb":-1}})", R"({"limits":{"nope":1}})",
                            R"({"mode":"weird"})", R"({"etc_files":["/home/x"]})", R"({"ro_paths":["relative"]})",
                            R"({"ro_paths":["/usr/../root"]})", R"({"workspace_mount":"/a/b"})",
                            R"({"root_host_uid":0})", R"({"allow_network":"yes"})", R"([1,2])"}) {
        EXPECT_THROW(Policy::from_json(json::parse(bad)), SandboxError) << bad;
    }
    EXPECT_THROW(load_policy("/nonexistent/policy.json"), SandboxError);
}

TEST_F(Api, ExitCodeStdinStdoutStderr) {
    RunResult r = sh(policy, ws.path(), "cat; echo err >&2; exit 3", "hello stdin");
    EXPECT_EQ(r.exit_code, 3);
    EXPECT_FALSE(r.signal);
    EXPECT_EQ(r.stdout_data, "hello stdin");
    EXPECT_EQ(r.stderr_data, "err\n");
    EXPECT_FALSE(r.timed_out);
    EXPECT_FALSE(r.truncated);
    EXPECT_EQ(r.limit, LimitHit::None);
    EXPECT_GT(r.wall_ms, 0);
    EXPECT_GT(r.cpu_ms, 0);
}

TEST_F(Api, LargeStdin) {
    std::string big(1 << 20, 'a');
    RunResult r = sh(policy, ws.path(), "wc -c", big);
    EXPECT_EQ(r.stdout_data, "1048576\n");
}

TEST_F(Api, StdinIgnoredByCommandDoesNotHang) {
    RunResult r = sh(policy, ws.path(), "echo done", std::string(1 << 20, 'b'));
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_EQ(r.stdout_data, "done\n");
}

TEST_F(Api, SignalIsReported) {
    RunResult r = sh(policy, ws.path(), "kill -SEGV $$");
    EXPECT_FALSE(r.exit_code);
    EXPECT_EQ(r.signal, SIGSEGV);
}

TEST_F(Api, CommandNotFound) {
    RunRequest req;
    req.argv = {"qnext-no-such-command"};
    req.workspace = ws.path();
    RunResult r = run(policy, req);
    EXPECT_EQ(r.exit_code, 127);
    EXPECT_NE(r.stderr_data.find("qnext-no-such-command"), std::string::npos);
    boost::asio::io_context io;
    EXPECT_THROW(Process::spawn(io, policy, req), ExecError);
}

TEST_F(Api, SystemPythonRuns) {
    RunRequest req;
    req.argv = {"/usr/bin/python3", "-c", "import json, sqlite3, ssl, sys; print(sys.version_info[0], json.dumps([1]))"};
    req.workspace = ws.path();
    RunResult r = run(policy, req);
    EXPECT_EQ(r.exit_code, 0) << r.stderr_data;
    EXPECT_EQ(r.stdout_data, "3 [1]\n");
}

TEST_F(Api, WorkspaceCwdAndEnvironment) {
    fs::create_directory(ws.path() / "sub");
    std::ofstream(ws.path() / "sub" / "in.txt") << "data";
    RunRequest req;
    req.argv = {"/bin/sh", "-c", "pwd; cat in.txt; echo; echo $FOO $HOME; echo out > out.txt"};
    req.workspace = ws.path();
    req.cwd = "sub";
    req.env = {{"FOO", "bar"}};
    RunResult r = run(policy, req);
    EXPECT_EQ(r.stdout_data, "/workspace/sub\ndata\nbar /tmp\n");
    EXPECT_EQ(read_file(ws.path() / "sub" / "out.txt"), "out\n");
    struct stat st;
    ASSERT_EQ(stat((ws.path() / "sub" / "out.txt").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, geteuid());   // new files belong to the workspace owner on the host
    req.cwd = "../x";
    EXPECT_THROW(run(policy, req), SandboxError);
}

TEST_F(Api, JsonContract) {
    RunResult r = sh(policy, ws.path(), "printf 'ok\\377'; exit 2");
    json j = json::parse(r.to_json().dump());
    std::vector<std::string> keys;
    for (const auto& [k, v] : j.items()) keys.push_back(k);
    std::sort(keys.begin(), keys.end());
    EXPECT_EQ(keys, (std::vector<std::string>{"cpu_ms", "enforcement", "exit_code", "limit", "memory_peak_bytes", "signal",
                                              "stderr", "stdout", "timed_out", "truncated", "wall_ms"}));
    const json& e = j["enforcement"];
    EXPECT_EQ(e["workspace"], (json{{"kind", "tmpfs"}, {"disk_bytes", 32 << 20}, {"inodes", 2048}}));
    EXPECT_EQ(e["process"]["memory_bytes"], 64 << 20);
    EXPECT_EQ(e["tmp_bytes"], 16 << 20);
    if (e["tree"]["backend"] == "none") {
        EXPECT_FALSE(e["tree"]["reason"].get<std::string>().empty());
    } else {
        EXPECT_EQ(e["tree"]["memory_bytes"], (64 + 16 + 32) << 20);   // processes + /tmp + workspace (all RAM)
        EXPECT_EQ(e["tree"]["pids"], 32 + 2);
    }
    EXPECT_EQ(j["exit_code"], 2);
    EXPECT_TRUE(j["signal"].is_null());
    EXPECT_TRUE(j["limit"].is_null());
    EXPECT_EQ(j["stdout"], "ok\xEF\xBF\xBD");   // invalid UTF-8 byte -> U+FFFD
    EXPECT_TRUE(j["wall_ms"].is_number());
    EXPECT_TRUE(j["cpu_ms"].is_number());
}

// ---- the workspace tmpfs: copy-in, copy-back, merge ---------------------------------------------------

struct stat lstat_of(const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(lstat(p.c_str(), &st), 0) << p;
    return st;
}

TEST_F(Api, WorkspaceChangesAreCopiedBack) {
    std::ofstream(ws.path() / "keep.txt") << "keep";
    std::ofstream(ws.path() / "edit.txt") << "old";
    std::ofstream(ws.path() / "gone.txt") << "gone";
    fs::create_directories(ws.path() / "olddir" / "sub");
    std::ofstream(ws.path() / "olddir" / "sub" / "x") << "x";
    fs::create_symlink("keep.txt", ws.path() / "link");
    const struct stat keep_before = lstat_of(ws.path() / "keep.txt");
    RunResult r = sh(policy, ws.path(),
                     "cat keep.txt; echo new > edit.txt; rm gone.txt; rm -r olddir; mkdir -p a/b; echo deep > a/b/c; "
                     "chmod 700 a/b/c; ln -s /etc/passwd evil; ln -sf edit.txt link; mkfifo fifo; "
                     "dd if=/dev/zero of=sparse bs=1 count=1 seek=7000000 2>/dev/null");
    ASSERT_EQ(r.exit_code, 0) << r.stderr_data;
    EXPECT_EQ(r.stdout_data, "keep");
    EXPECT_EQ(read_file(ws.path() / "edit.txt"), "new\n");
    EXPECT_FALSE(fs::exists(ws.path() / "gone.txt"));
    EXPECT_FALSE(fs::exists(ws.path() / "olddir"));
    EXPECT_EQ(read_file(ws.path() / "a" / "b" / "c"), "deep\n");
    EXPECT_EQ(lstat_of(ws.path() / "a" / "b" / "c").st_mode & 07777, 0700u);
    EXPECT_EQ(fs::read_symlink(ws.path() / "evil"), "/etc/passwd");   // a symlink, never followed
    EXPECT_EQ(fs::read_symlink(ws.path() / "link"), "edit.txt");
    EXPECT_FALSE(fs::exists(fs::symlink_status(ws.path() / "fifo")));
    ASSERT_EQ(r.not_copied_back, std::vector<std::string>{"fifo (fifo)"});
    EXPECT_NE(r.stderr_data.find("not copied back to the host workspace: fifo (fifo)"), std::string::npos);
    const struct stat sp = lstat_of(ws.path() / "sparse");
    EXPECT_EQ(sp.st_size, 7000001);
    EXPECT_LT(sp.st_blocks * 512, 1 << 20);   // holes stay holes
    const struct stat keep_after = lstat_of(ws.path() / "keep.txt");   // unchanged: not rewritten
    EXPECT_EQ(keep_after.st_ino, keep_before.st_ino);
    EXPECT_EQ(keep_after.st_mtim.tv_nsec, keep_before.st_mtim.tv_nsec);
    for (const auto& e : fs::recursive_directory_iterator(ws.path()))
        EXPECT_EQ(e.path().filename().string().find(".qnext-sync"), std::string::npos) << e.path();
}

// Two sandboxes on one workspace at the same time (parallel tool calls): neither undoes the other's work, and
// a file deleted in the sandbox survives on the host if the host changed it meanwhile.
TEST_F(Api, ConcurrentRunsMergeTheirChanges) {
    std::ofstream(ws.path() / "shared.txt") << "v1";
    boost::asio::io_context io;
    int done = 0;
    auto start = [&](const std::string& script) {
        RunRequest req;
        req.argv = {"/bin/sh", "-c", script};
        req.workspace = ws.path();
        async_run(io, policy, req, [&](std::exception_ptr e, RunResult r) {
            EXPECT_FALSE(e);
            EXPECT_EQ(r.exit_code, 0) << r.stderr_data;
            ++done;
        });
    };
    start("sleep 0.6; echo a > a.txt; rm shared.txt");
    start("echo b > b.txt");
    boost::asio::steady_timer t(io, std::chrono::milliseconds(300));
    t.async_wait([&](const boost::system::error_code&) { std::ofstream(ws.path() / "shared.txt") << "v2 from the host"; });
    io.run();
    EXPECT_EQ(done, 2);
    EXPECT_EQ(read_file(ws.path() / "a.txt"), "a\n");
    EXPECT_EQ(read_file(ws.path() / "b.txt"), "b\n");
    EXPECT_EQ(read_file(ws.path() / "shared.txt"), "v2 from the host");
}

TEST_F(Api, WorkspaceLargerThanTheQuotaIsRefused) {
    {
        std::ofstream big(ws.path() / "big.bin", std::ios::binary);
        std::string mb(1 << 20, 'x');
        for (int i = 0; i < 40; ++i) big << mb;
    }
    try {
        sh(policy, ws.path(), "true");
        ADD_FAILURE() << "expected a quota error";
    } catch (const SandboxError& e) {
        EXPECT_NE(std::string(e.what()).find("does not fit its quota (32 MiB, 2048 inodes)"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("big.bin"), std::string::npos) << e.what();
    }
    policy.limits.disk_bytes = 0;   // bound without a quota: runs, and says so
    RunResult r = sh(policy, ws.path(), "wc -c < big.bin");
    EXPECT_EQ(r.stdout_data, std::to_string(40 << 20) + "\n");
    EXPECT_EQ(r.enforcement.workspace, "bind");
}

TEST_F(Api, WithoutCgroupsTheFallbackIsReported) {
    setenv("QNEXT_SANDBOX_CGROUPS", "off", 1);
    RunResult r = sh(policy, ws.path(), "python3 -c 'a = bytearray(512 << 20)'");
    unsetenv("QNEXT_SANDBOX_CGROUPS");
    EXPECT_EQ(r.enforcement.tree, "none");
    EXPECT_NE(r.enforcement.tree_reason.find("QNEXT_SANDBOX_CGROUPS"), std::string::npos);
    EXPECT_EQ(r.to_json()["enforcement"]["tree"]["backend"], "none");
    EXPECT_EQ(r.limit, LimitHit::Memory);   // the per-process limits still hold
    EXPECT_EQ(r.enforcement.process_memory_bytes, policy.limits.memory_bytes);
}

// ro_paths below /tmp (e.g. an MCP server's venv) stay visible over the private /tmp tmpfs, read-only; a policy
// naming /tmp itself (which would hide the private /tmp) is refused with a clear error.
TEST_F(Api, RoPathsBelowTmpStayVisible) {
    std::string tmpl = "/tmp/qnext-ro-below-tmp-XXXXXX";   // below /tmp whatever TMPDIR says
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    const fs::path ro = tmpl;
    chmod(ro.c_str(), 0755);
    struct Cleanup {
        fs::path p;
        ~Cleanup() {
            std::error_code ec;
            fs::remove_all(p, ec);
        }
    } cleanup{ro};
    std::ofstream(ro / "f") << "visible";
    policy.ro_paths.push_back(ro.string());
    RunResult r = sh(policy, ws.path(), "cat " + ro.string() + "/f; echo; echo x > " + ro.string() +
                                            "/g 2>/dev/null || echo readonly; echo y > /tmp/other && echo tmp-writable");
    EXPECT_EQ(r.stdout_data, "visible\nreadonly\ntmp-writable\n") << r.stderr_data;
    policy.ro_paths.push_back("/tmp");
    try {
        sh(policy, ws.path(), "true");
        ADD_FAILURE() << "accepted ro_paths /tmp";
    } catch (const SandboxError& e) {
        EXPECT_NE(std::string(e.what()).find("would hide the sandbox's private /tmp"), std::string::npos) << e.what();
    }
}

TEST_F(Api, ConcurrentAsyncRuns) {
    boost::asio::io_context io;
    std::vector<RunResult> results;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 3; ++i) {
        RunRequest req;
        req.argv = {"/bin/sh", "-c", "sleep 0.5; echo " + std::to_string(i)};
        req.workspace = ws.path();
        async_run(io, policy, req, [&](std::exception_ptr e, RunResult r) {
            EXPECT_FALSE(e);
            results.push_back(std::move(r));
        });
    }
    io.run();
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_EQ(results.size(), 3u);
    for (const auto& r : results) EXPECT_EQ(r.exit_code, 0);
    EXPECT_LT(ms, 1400);   // they ran in parallel
}

TEST_F(Api, CancelKillsTheRun) {
    boost::asio::io_context io;
    RunRequest req;
    req.argv = {"/bin/sh", "-c", "sleep 30 # qnext-cancelmark"};
    req.workspace = ws.path();
    std::optional<RunResult> got;
    auto handle = async_run(io, policy, req, [&](std::exception_ptr, RunResult r) { got = std::move(r); });
    boost::asio::steady_timer t(io, std::chrono::milliseconds(300));
    t.async_wait([&](auto) { handle->cancel(); });
    io.run();
    ASSERT_TRUE(got);
    EXPECT_TRUE(got->cancelled);
    EXPECT_EQ(got->signal, SIGKILL);
    EXPECT_LT(got->wall_ms, 2000);
    EXPECT_TRUE(host_pids_with("qnext-cancelmark").empty());
}

TEST_F(Api, ErrorsArriveThroughTheHandler) {
    boost::asio::io_context io;
    RunRequest req;
    req.argv = {"/bin/true"};
    req.workspace = ws.path() / "missing";
    std::exception_ptr err;
    async_run(io, policy, req, [&](std::exception_ptr e, RunResult) { err = e; });
    io.run();
    ASSERT_TRUE(err);
    EXPECT_THROW(std::rethrow_exception(err), SandboxError);
}

TEST_F(Api, InteractiveProcess) {
    boost::asio::io_context io;
    SpawnRequest req;
    req.argv = {"/bin/cat"};
    req.workspace = ws.path();
    auto p = Process::spawn(io, policy, req);
    EXPECT_TRUE(p->running());
    boost::asio::write(p->stdin_pipe(), boost::asio::buffer(std::string("ping\n")));
    boost::asio::streambuf sb;
    boost::asio::read_until(p->stdout_pipe(), sb, '\n');
    EXPECT_EQ(std::string(boost::asio::buffers_begin(sb.data()), boost::asio::buffers_end(sb.data())), "ping\n");
    p->stdin_pipe().close();
    std::optional<ExitStatus> st;
    p->async_wait([&](const ExitStatus& e) { st = e; });
    io.run();
    ASSERT_TRUE(st);
    EXPECT_EQ(st->exit_code, 0);
    EXPECT_FALSE(p->running());
}

TEST_F(Api, TerminateAndDestructor) {
    boost::asio::io_context io;
    SpawnRequest req;
    req.argv = {"/bin/sh", "-c", "sleep 30 # qnext-termmark"};
    req.workspace = ws.path();
    auto p = Process::spawn(io, policy, req);
    std::optional<ExitStatus> st;
    p->async_wait([&](const ExitStatus& e) { st = e; });
    p->terminate();
    io.run();
    ASSERT_TRUE(st);
    EXPECT_EQ(st->signal, SIGTERM);
    req.argv = {"/bin/sh", "-c", "sleep 31 # qnext-dtormark"};
    auto q = Process::spawn(io, policy, req);
    EXPECT_FALSE(host_pids_with("qnext-dtormark").empty());
    q.reset();   // dropping the last reference kills and reaps the sandbox
    EXPECT_TRUE(host_pids_with("qnext-dtormark").empty());
    EXPECT_EQ(zombie_children(), 0);
}

TEST_F(Api, NoFdLeaksOrZombiesOverManyRuns) {
    const int before = open_fd_count();
    for (int i = 0; i < 10; ++i) sh(policy, ws.path(), i % 2 ? "true" : "exit 1");
    EXPECT_EQ(open_fd_count(), before);
    EXPECT_EQ(zombie_children(), 0);
}

TEST_F(Api, UnprivilegedUser) {
    if (geteuid() != 0) GTEST_SKIP() << "already unprivileged: every other test covers this path";
    TempDir uws;
    ASSERT_EQ(chown(uws.path().c_str(), 65534, 65534), 0);
    int pipefd[2];
    ASSERT_EQ(pipe(pipefd), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        close(pipefd[0]);
        std::string out;
        // setresuid makes the process non-dumpable (its /proc files stay root's); an unprivileged
        // qnext started normally is dumpable, so restore that.
        if (setgroups(0, nullptr) || setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534) ||
            prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)) {
            out = "setuid failed";
        } else if (std::string why = isolation_unavailable_reason(); !why.empty()) {
            out = "SKIP " + why;
        } else {
            try {
                RunResult r = sh(test_policy(), uws.path(), "id -u; echo ok > /workspace/f; cat /etc/shadow; "
                                                             "grep CapEff /proc/self/status");
                out = r.stdout_data;
            } catch (const std::exception& e) {
                out = std::string("ERROR ") + e.what();
            }
        }
        ssize_t n = write(pipefd[1], out.data(), out.size());
        _exit(n < 0);
    }
    close(pipefd[1]);
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = read(pipefd[0], buf, sizeof buf)) > 0;) out.append(buf, size_t(n));
    close(pipefd[0]);
    waitpid(pid, nullptr, 0);
    if (out.starts_with("SKIP")) GTEST_SKIP() << "unprivileged user namespaces unavailable: " << out;
    EXPECT_EQ(out, "1000\nCapEff:\t0000000000000000\n");
    struct stat st;
    ASSERT_EQ(stat((uws.path() / "f").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 65534u);
}

TEST_F(Api, ModeNoneIsExplicitAndWarns) {
    policy.mode = Mode::None;
    setenv("AWS_SECRET_ACCESS_KEY", "qnext-canary-secret", 1);
    ::testing::internal::CaptureStderr();
    RunResult r = sh(policy, ws.path(), "pwd; env | grep -c AWS; sleep 20 & echo bg");
    const std::string warn = ::testing::internal::GetCapturedStderr();
    unsetenv("AWS_SECRET_ACCESS_KEY");
    EXPECT_NE(warn.find("WITHOUT sandbox isolation"), std::string::npos);
    EXPECT_EQ(r.stdout_data, fs::canonical(ws.path()).string() + "\n0\nbg\n");
    EXPECT_LT(r.wall_ms, 3000);   // the background sleep was killed with the run
}

}  // namespace
}  // namespace qnext::sandbox::testing
