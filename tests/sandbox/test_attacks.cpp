// The sandbox attack suite: every case checks that the attack is contained inside the sandbox AND
// that the host is unaffected afterwards. Small limits keep the whole suite fast (see test_policy).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "tests/sandbox/sandbox_test_util.h"

namespace qnext::sandbox::testing {
namespace {
namespace fs = std::filesystem;

class Attack : public ::testing::Test {
protected:
    void SetUp() override {
        const std::string reason = isolation_unavailable_reason();
        if (!reason.empty()) GTEST_SKIP() << "isolation unavailable here: " << reason;
        fds_before_ = open_fd_count();
    }
    void TearDown() override {
        if (IsSkipped()) return;
        // Parent safety after every attack: no zombies, no leaked fds.
        EXPECT_EQ(zombie_children(), 0);
        EXPECT_EQ(open_fd_count(), fds_before_);
        // Host files after every attack: whatever the case left in the workspace belongs to the workspace's
        // owner and carries no set-user-ID/set-group-ID bit and no file capability.
        for (const std::string& problem : host_file_problems(ws.path())) ADD_FAILURE() << problem;
    }
    RunResult run_sh(const std::string& script) { return sh(policy, ws.path(), script); }

    TempDir ws;
    Policy policy = test_policy();
    int fds_before_ = 0;
};

// A host directory outside the workspace holding a canary file.
struct Canary {
    TempDir dir{"qnext-canary"};
    fs::path file = dir.path() / "canary.txt";
    Canary() { std::ofstream(file) << "original"; }
    bool intact() const { return read_file(file) == "original" && fs::directory_iterator(dir.path()) != fs::directory_iterator() &&
                                 std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()) == 1; }
};

// Unix-domain listener on an abstract address of the host's network namespace.
struct AbstractListener {
    int fd = -1;
    std::string name;
    explicit AbstractListener(const std::string& n) : name(n) {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::memcpy(a.sun_path + 1, name.data(), name.size());
        if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), socklen_t(offsetof(sockaddr_un, sun_path) + 1 + name.size())) ||
            listen(fd, 4))
            ADD_FAILURE() << "cannot listen on @" << name << ": " << std::strerror(errno);
    }
    ~AbstractListener() { close(fd); }
    bool reached() const { return accept(fd, nullptr, nullptr) >= 0; }
};

// The Python snippet a case runs to connect to @name; prints CONNECTED or the errno.
std::string connect_abstract(const std::string& name) {
    return "python3 -c 'import socket\ns=socket.socket(socket.AF_UNIX)\ntry:\n s.connect(\"\\0" + name +
           "\"); print(\"CONNECTED\")\nexcept OSError as e: print(\"refused\", e.errno)'";
}

Policy network_policy() {
    Policy p = test_policy();
    p.name = "network";
    p.allow_network = true;
    return p;
}

bool exited_nonzero(const RunResult& r) { return !r.exit_code || *r.exit_code != 0; }

// ---- resource exhaustion ------------------------------------------------------------------------

TEST_F(Attack, ForkBombShell) {
    RunResult r = run_sh("bomb() { bomb | bomb & }; bomb; sleep 1; echo survived");
    EXPECT_LT(r.wall_ms, 6000);
    EXPECT_TRUE(host_pids_with("bomb").empty());
    // The host can still fork.
    pid_t p = fork();
    if (p == 0) _exit(0);
    ASSERT_GT(p, 0);
    waitpid(p, nullptr, 0);
}

TEST_F(Attack, ForkBombPythonHitsPidLimit) {
    RunResult r = run_sh(
        "python3 -c 'import os,time\nn=0\ntry:\n while True:\n  if os.fork()==0:\n   time.sleep(60); os._exit(0)\n"
        "  n+=1\nexcept BlockingIOError:\n print(n); raise' # qnext-forkmark");
    EXPECT_EQ(r.limit, LimitHit::Pids) << r.stderr_data;
    EXPECT_LE(std::atoi(r.stdout_data.c_str()), int(policy.limits.max_processes));
    EXPECT_FALSE(r.timed_out);   // the sleeping children died with the sandbox, not at the timeout
    EXPECT_TRUE(host_pids_with("qnext-forkmark").empty());
}

TEST_F(Attack, MemoryBomb) {
    RunResult r = run_sh("python3 -c 'a = bytearray(512 << 20); print(len(a))'");
    EXPECT_EQ(r.limit, LimitHit::Memory) << r.stderr_data;
    EXPECT_EQ(r.stdout_data, "");
    std::vector<char> host(256 << 20, 1);   // the host can still allocate
    EXPECT_EQ(host[12345], 1);
}

TEST_F(Attack, DiskFillWorkspace) {
    RunResult r = run_sh("dd if=/dev/zero of=/workspace/big bs=1M count=200");
    EXPECT_EQ(r.limit, LimitHit::Fsize) << r.stderr_data;
    EXPECT_TRUE(r.signal == SIGXFSZ || r.exit_code == 128 + SIGXFSZ);   // dd killed; sh reports 128+signal
    EXPECT_LE(fs::file_size(ws.path() / "big"), policy.limits.max_file_bytes);
}

TEST_F(Attack, DiskFillTmp) {
    struct statvfs before, after;
    ASSERT_EQ(statvfs("/tmp", &before), 0);
    policy.limits.max_file_bytes = 256ull << 20;
    RunResult r = run_sh("i=0; while dd if=/dev/zero of=/tmp/fill$i bs=1M count=8 2>/dev/null; do i=$((i+1)); "
                         "done; du -sm /tmp | cut -f1; df -m /tmp | tail -1");
    ASSERT_EQ(statvfs("/tmp", &after), 0);
    EXPECT_LE(std::atoi(r.stdout_data.c_str()), 17);   // capped at the 16 MiB tmpfs
    // The host /tmp lost at most a little (other work runs on this machine in parallel).
    const double mb = 1.0 / (1 << 20);
    EXPECT_GT(double(after.f_bavail) * after.f_frsize * mb, double(before.f_bavail) * before.f_frsize * mb - 64);
    EXPECT_TRUE(fs::directory_iterator(ws.path()) == fs::directory_iterator());
}

// ---- whole-tree limits (control groups) and the workspace quota ------------------------------------

bool has_tree_limits(const RunResult& r) { return r.enforcement.tree != "none"; }

size_t count_of(const std::string& hay, const std::string& needle) {
    size_t n = 0;
    for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
    return n;
}

// Five children, each under its own RLIMIT_AS, together want more than the sandbox may have.
TEST_F(Attack, TreeMemoryAcrossChildren) {
    policy.limits.timeout_s = 20;
    RunResult r = run_sh(
        "for i in 1 2 3 4 5; do python3 -c 'import time\na = b\"x\" * (32 << 20)\ntime.sleep(1.5)\nprint(\"done\")' & "
        "pids=\"$pids $!\"; done; fail=0; for j in $pids; do wait $j || fail=1; done; exit $fail");
    if (!has_tree_limits(r)) GTEST_SKIP() << "no cgroups here: " << r.enforcement.tree_reason;
    EXPECT_EQ(r.limit, LimitHit::Memory) << r.stdout_data << r.stderr_data;
    EXPECT_LE(count_of(r.stdout_data, "done"), 3u);   // (64 + 16 + 32) MiB: at most three 32 MiB children at once
    EXPECT_LE(r.memory_peak_bytes, r.enforcement.tree_memory_bytes);
    EXPECT_FALSE(r.timed_out);
    std::vector<char> host(256 << 20, 1);   // the host can still allocate
    EXPECT_EQ(host[12345], 1);
}

// CPU loops in several processes, each far below its own RLIMIT_CPU when the tree's CPU time runs out.
TEST_F(Attack, TreeCpuAcrossChildren) {
    policy.limits.cpu_s = 1;
    policy.limits.timeout_s = 30;
    RunResult r = run_sh("for i in 1 2 3 4 5 6; do (while :; do :; done) & done; wait");
    if (!has_tree_limits(r)) GTEST_SKIP() << "no cgroups here: " << r.enforcement.tree_reason;
    EXPECT_EQ(r.limit, LimitHit::Cpu);
    EXPECT_FALSE(r.timed_out);
    EXPECT_LT(r.wall_ms, 10000);   // six loops reach 1 CPU-second per process only after >= 3 s on two cores
    EXPECT_GE(r.cpu_ms, 900);
    EXPECT_LE(r.cpu_ms, 3000);
}

// Without a user namespace (sandbox mode none) RLIMIT_NPROC would count all of the user's processes, so it is
// not set: the control group's pids.max is what holds.
TEST_F(Attack, TreePidsLimitWithoutUserNamespace) {
    policy.mode = Mode::None;
    ::testing::internal::CaptureStderr();
    RunResult r = run_sh("i=0; while [ $i -lt 60 ]; do sleep 5 & i=$((i+1)); done; echo spawned # qnext-pidsmark");
    ::testing::internal::GetCapturedStderr();
    if (!has_tree_limits(r)) GTEST_SKIP() << "no cgroups here: " << r.enforcement.tree_reason;
    EXPECT_EQ(r.enforcement.tree_pids, policy.limits.max_processes + 2);
    EXPECT_EQ(r.limit, LimitHit::Pids) << r.stderr_data;
    EXPECT_EQ(r.stdout_data, "");
    EXPECT_TRUE(host_pids_with("qnext-pidsmark").empty());
}

std::uint64_t host_bytes_under(const fs::path& dir, size_t* files = nullptr) {
    std::uint64_t total = 0;
    size_t n = 0;
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
        ++n;
        if (e.is_regular_file()) total += e.file_size();
    }
    if (files) *files = n;
    return total;
}

TEST_F(Attack, ManyFilesDiskFill) {
    struct statvfs before, after;
    ASSERT_EQ(statvfs(ws.path().c_str(), &before), 0);
    RunResult r = run_sh("for i in $(seq 1 200); do head -c 1048576 /dev/zero > f$i || exit 1; done; echo all");
    ASSERT_EQ(statvfs(ws.path().c_str(), &after), 0);
    EXPECT_EQ(r.enforcement.workspace, "tmpfs");
    EXPECT_EQ(r.limit, LimitHit::Disk) << r.stderr_data;
    EXPECT_EQ(r.stdout_data, "");
    EXPECT_NE(r.stderr_data.find("No space left on device"), std::string::npos) << r.stderr_data;
    EXPECT_LE(host_bytes_under(ws.path()), policy.limits.disk_bytes);
    const double mb = 1.0 / (1 << 20);
    EXPECT_GT(double(after.f_bavail) * after.f_frsize * mb, double(before.f_bavail) * before.f_frsize * mb - 64);
}

TEST_F(Attack, InodeFlood) {
    policy.limits.timeout_s = 30;
    RunResult r = run_sh("python3 -c 'import os\ni = 0\nwhile True:\n open(\"f%d\" % i, \"w\").close(); i += 1' 2>&1 | tail -1; "
                         "mkdir d || echo nomkdir");
    EXPECT_FALSE(r.timed_out);
    EXPECT_LT(r.wall_ms, 15000);
    EXPECT_NE(r.stdout_data.find("No space left on device"), std::string::npos) << r.stdout_data;
    EXPECT_NE(r.stdout_data.find("nomkdir"), std::string::npos);
    size_t entries = 0;
    host_bytes_under(ws.path(), &entries);
    EXPECT_LE(entries, policy.limits.max_inodes);
    EXPECT_GT(entries, policy.limits.max_inodes / 2);   // what fitted was copied back
}

TEST_F(Attack, MountinfoShowsNoHostPaths) {
    RunResult r = run_sh("cat /proc/self/mountinfo /proc/self/mounts");
    ASSERT_EQ(r.exit_code, 0) << r.stderr_data;
    EXPECT_EQ(r.stdout_data.find(ws.path().string()), std::string::npos) << r.stdout_data;
    EXPECT_EQ(r.stdout_data.find("oldroot"), std::string::npos) << r.stdout_data;
    EXPECT_NE(r.stdout_data.find(" / /workspace rw,nosuid,nodev"), std::string::npos) << r.stdout_data;
    // Every writable mount is nosuid (and nodev); read-only system binds are nosuid too.
    std::istringstream lines(r.stdout_data.substr(0, r.stdout_data.find("\n", r.stdout_data.rfind(" - "))));
    for (std::string line; std::getline(lines, line);) {
        if (line.find(" - ") == std::string::npos) continue;
        std::istringstream f(line);
        std::string id, parent, dev, root, point, opts;
        f >> id >> parent >> dev >> root >> point >> opts;
        EXPECT_NE(opts.find("nosuid"), std::string::npos) << line;
    }
}

TEST_F(Attack, CpuLoop) {
    policy.limits.cpu_s = 1;
    policy.limits.timeout_s = 30;   // generous: the machine may be busy; the CPU limit must fire first
    RunResult r = run_sh("while :; do :; done");
    EXPECT_EQ(r.limit, LimitHit::Cpu);
    EXPECT_FALSE(r.timed_out);
    EXPECT_TRUE(r.signal == SIGXCPU || r.signal == SIGKILL);
    EXPECT_GE(r.cpu_ms, 800);
}

TEST_F(Attack, WallClockTimeout) {
    policy.limits.timeout_s = 1;
    RunResult r = run_sh("sleep 30 # qnext-sleepmark");
    EXPECT_TRUE(r.timed_out);
    EXPECT_EQ(r.signal, SIGKILL);
    EXPECT_EQ(r.limit, LimitHit::None);
    EXPECT_LT(r.wall_ms, 2500);
    EXPECT_TRUE(host_pids_with("qnext-sleepmark").empty());
}

TEST_F(Attack, GigabyteOfOutput) {
    RunResult r = run_sh("head -c 1000000000 /dev/zero | tr '\\0' x");
    EXPECT_EQ(r.limit, LimitHit::Output);
    EXPECT_TRUE(r.truncated);
    EXPECT_LT(r.stdout_data.size(), policy.limits.output_bytes + 200);
    EXPECT_LT(r.wall_ms, 4000);
    EXPECT_FALSE(r.timed_out);
}

TEST_F(Attack, OutputKeepsHeadAndTail) {
    RunResult r = run_sh("echo FIRST; head -c 100000 /dev/zero | tr '\\0' y; echo; echo LAST");
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_TRUE(r.truncated);
    EXPECT_EQ(r.limit, LimitHit::None);
    EXPECT_TRUE(r.stdout_data.starts_with("FIRST\n"));
    EXPECT_TRUE(r.stdout_data.ends_with("LAST\n"));
    EXPECT_NE(r.stdout_data.find("bytes of output truncated"), std::string::npos);
}

// ---- reading host secrets -------------------------------------------------------------------------

TEST_F(Attack, ReadEtcShadow) {
    RunResult r = run_sh("cat /etc/shadow; cat /etc/gshadow; ls /etc/ssh");
    EXPECT_TRUE(exited_nonzero(r));
    EXPECT_EQ(r.stdout_data, "");
}

TEST_F(Attack, ReadRootHome) {
    RunResult r = run_sh("ls -a /root; cat /root/.bashrc; ls /root/.ssh");
    EXPECT_TRUE(exited_nonzero(r));
    EXPECT_EQ(r.stdout_data, "");
}

TEST_F(Attack, ReadProjectFiles) {
    const std::string src = QNEXT_SOURCE_DIR;
    RunResult r = run_sh("ls " + src + "; cat " + src + "/CMakeLists.txt; ls /work");
    EXPECT_TRUE(exited_nonzero(r));
    EXPECT_EQ(r.stdout_data, "");
}

TEST_F(Attack, ReadOtherUsersHome) {
    RunResult r = run_sh("ls /home; ls /var/lib; ls /srv; ls /opt");
    EXPECT_TRUE(exited_nonzero(r));
    EXPECT_EQ(r.stdout_data, "");
}

// ---- writing outside the workspace ------------------------------------------------------------------

TEST_F(Attack, WriteAbsolutePaths) {
    Canary c;
    RunResult r = run_sh("for f in /usr/pwned /etc/pwned /pwned /proc/pwned " + c.dir.path().string() +
                         "/pwned " + c.file.string() + "; do echo x > $f && echo WROTE $f; done; true");
    EXPECT_EQ(r.stdout_data.find("WROTE"), std::string::npos) << r.stdout_data;
    EXPECT_TRUE(c.intact());
    EXPECT_FALSE(fs::exists("/usr/pwned"));
}

TEST_F(Attack, WriteViaDotDot) {
    RunResult r = run_sh("cd /workspace && echo x > ../pwned; echo x > ../../../pwned; echo x > /workspace/../tmp/../pwned; "
                         "ls -a ..");
    EXPECT_FALSE(fs::exists(ws.path().parent_path() / "pwned"));
    EXPECT_FALSE(fs::exists("/pwned"));
    // The parent of the workspace inside is the sandbox root, not the host directory.
    EXPECT_EQ(r.stdout_data.find(ws.path().filename().string()), std::string::npos);
}

TEST_F(Attack, SymlinkPlantedInWorkspace) {
    Canary c;
    fs::create_symlink(c.file, ws.path() / "link");
    fs::create_directory_symlink(c.dir.path(), ws.path() / "dirlink");
    RunResult r = run_sh("echo pwned > /workspace/link; echo pwned > /workspace/dirlink/new; cat /workspace/link; true");
    EXPECT_TRUE(c.intact());
    EXPECT_EQ(r.stdout_data.find("original"), std::string::npos);
}

TEST_F(Attack, HardLinkToHostFile) {
    RunResult r = run_sh("ln /etc/passwd /workspace/pw && echo LINKED; ln /usr/bin/su /workspace/su && echo LINKED; true");
    EXPECT_EQ(r.stdout_data.find("LINKED"), std::string::npos);
    EXPECT_FALSE(fs::exists(ws.path() / "pw"));
    EXPECT_FALSE(fs::exists(ws.path() / "su"));
}

// ---- /proc tricks -----------------------------------------------------------------------------------

TEST_F(Attack, ProcOneRoot) {
    RunResult r = run_sh("ls /proc/1/root/ && echo LISTED; cat /proc/1/root/etc/shadow; ls /proc/1/root/root; "
                         "cat /proc/1/environ; cat /proc/1/mem; true");
    EXPECT_EQ(r.stdout_data.find("LISTED"), std::string::npos);
    EXPECT_NE(r.stderr_data.find("Permission denied"), std::string::npos);
}

TEST_F(Attack, ProcSelfExeOverwrite) {
    const fs::path self = fs::read_symlink("/proc/self/exe");
    const auto before = fs::last_write_time(self);
    RunResult r = run_sh("echo x > /proc/1/exe && echo W1; echo x > /proc/self/exe && echo W2; "
                         "cp /bin/true /proc/self/exe && echo W3; true");
    EXPECT_EQ(r.stdout_data, "");
    EXPECT_EQ(fs::last_write_time(self), before);
}

TEST_F(Attack, HostPidsInvisible) {
    RunResult r = run_sh("ls /proc | grep -c '^[0-9]'; kill -9 " + std::to_string(getpid()) + " && echo KILLED; true");
    EXPECT_LE(std::atoi(r.stdout_data.c_str()), 6);   // init, sh, ls, grep (+ races)
    EXPECT_EQ(r.stdout_data.find("KILLED"), std::string::npos);
}

TEST_F(Attack, PtraceSibling) {
    RunResult r = run_sh(
        "sleep 5 & python3 -c 'import ctypes,sys\nlibc=ctypes.CDLL(None,use_errno=True)\n"
        "print(libc.ptrace(16,int(sys.argv[1]),0,0),ctypes.get_errno())' $!; strace -p $! 2>&1 | head -1; kill $!");
    EXPECT_TRUE(r.stdout_data.starts_with("-1 1\n")) << r.stdout_data;   // EPERM
    EXPECT_NE(r.stdout_data.find("Operation not permitted"), std::string::npos) << r.stdout_data;
}

// ---- network ----------------------------------------------------------------------------------------

TEST_F(Attack, TcpConnectToHostLoopback) {
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ASSERT_GE(ls, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(listen(ls, 4), 0);
    socklen_t len = sizeof a;
    getsockname(ls, reinterpret_cast<sockaddr*>(&a), &len);
    const int port = ntohs(a.sin_port);
    RunResult r = run_sh("python3 -c 'import socket\ns=socket.create_connection((\"127.0.0.1\"," + std::to_string(port) +
                         "),timeout=1)\nprint(\"CONNECTED\")'; echo hi > /dev/tcp/127.0.0.1/" + std::to_string(port) +
                         " && echo CONNECTED; bash -c 'echo hi > /dev/tcp/127.0.0.1/" + std::to_string(port) +
                         "' && echo CONNECTED; true");
    EXPECT_EQ(r.stdout_data.find("CONNECTED"), std::string::npos);
    EXPECT_LT(accept(ls, nullptr, nullptr), 0);   // nobody reached the host listener
    close(ls);
}

TEST_F(Attack, Dns) {
    RunResult r = run_sh("python3 -c 'import socket\nprint(socket.getaddrinfo(\"example.com\",80))'; getent hosts example.com; true");
    EXPECT_EQ(r.stdout_data, "");
}

TEST_F(Attack, RawAndPacketSockets) {
    RunResult r = run_sh(
        "python3 -c 'import socket\nfor fam,typ in [(socket.AF_INET,socket.SOCK_RAW),(socket.AF_PACKET,socket.SOCK_RAW),"
        "(socket.AF_INET6,socket.SOCK_DGRAM),(socket.AF_NETLINK,socket.SOCK_RAW)]:\n try:\n  socket.socket(fam,typ); "
        "print(\"OPENED\",fam)\n except OSError as e: print(\"denied\",e.errno)\n"
        "socket.socket(socket.AF_UNIX); print(\"unix ok\")'; ip link 2>&1 | grep -c UP");
    EXPECT_EQ(r.stdout_data.find("OPENED"), std::string::npos) << r.stdout_data;
    EXPECT_NE(r.stdout_data.find("unix ok"), std::string::npos) << r.stderr_data;
}

TEST_F(Attack, AbstractUnixSocketOfHost) {
    AbstractListener host("qnext-attack-abstract-default");
    RunResult r = run_sh(connect_abstract(host.name));
    EXPECT_TRUE(r.stdout_data.starts_with("refused")) << r.stdout_data << r.stderr_data;
    EXPECT_FALSE(host.reached());
}

// The network policy keeps the host's network namespace (egress), which holds the host's abstract unix
// sockets: a Landlock scope keeps them out of reach, while sockets made inside the sandbox still work.
TEST_F(Attack, NetworkPolicyRunsAndCannotReachHostAbstractSockets) {
    AbstractListener host("qnext-attack-abstract-net");
    RunResult r = sh(network_policy(), ws.path(),
                     connect_abstract(host.name) +
                         "; python3 -c 'import socket\nsocket.socket(socket.AF_INET); socket.socket(socket.AF_INET6)\n"
                         "a=socket.socket(socket.AF_UNIX); a.bind(\"\\0qnext-inner\"); a.listen(1)\n"
                         "b=socket.socket(socket.AF_UNIX); b.connect(\"\\0qnext-inner\"); print(\"inner ok\")'");
    ASSERT_EQ(r.exit_code, 0) << r.stderr_data;
    EXPECT_TRUE(r.stdout_data.starts_with("refused 1\n")) << r.stdout_data;   // EPERM from Landlock
    EXPECT_NE(r.stdout_data.find("inner ok"), std::string::npos) << r.stdout_data << r.stderr_data;
    EXPECT_FALSE(host.reached());
}

TEST_F(Attack, NetworkPolicyStillDeniesRawAndPacketSockets) {
    RunResult r = sh(network_policy(), ws.path(),
                     "python3 -c 'import socket\nfor fam,typ in [(socket.AF_PACKET,socket.SOCK_RAW),(socket.AF_INET,"
                     "socket.SOCK_RAW)]:\n try:\n  socket.socket(fam,typ); print(\"OPENED\",fam)\n except OSError as e: "
                     "print(\"denied\",e.errno)'");
    EXPECT_EQ(r.stdout_data.find("OPENED"), std::string::npos) << r.stdout_data;
    EXPECT_NE(r.stdout_data.find("denied"), std::string::npos) << r.stdout_data << r.stderr_data;
}

TEST_F(Attack, NoHostUnixSockets) {
    RunResult r = run_sh("ls /run /var/run; ls /tmp/.X11-unix; true");
    EXPECT_EQ(r.stdout_data, "");
}

// ---- privilege --------------------------------------------------------------------------------------

TEST_F(Attack, SetuidBinaryGainsNothing) {
    RunResult r = run_sh("ls -l /usr/bin/mount | cut -c1-10; mount -t tmpfs none /workspace && echo MOUNTED; "
                         "su -c id root </dev/null; id -u");
    EXPECT_NE(r.stdout_data.find("-rwsr"), std::string::npos) << "test needs a setuid mount binary";
    EXPECT_EQ(r.stdout_data.find("MOUNTED"), std::string::npos);
    EXPECT_EQ(r.stdout_data.find("uid=0"), std::string::npos);
    EXPECT_TRUE(r.stdout_data.ends_with("1000\n"));
}

// A set-user-ID copy of a shell in a host directory is a root shell for every host user (the workspace's
// files belong to its owner: root when qnext runs as root). Every way to set the bits is refused.
TEST_F(Attack, SetuidPlantRefused) {
    RunResult r = run_sh(
        "cp /bin/sh rootsh; chmod 4755 rootsh; echo chmod=$?; chmod g+s rootsh; echo chmodg=$?; "
        "install -m 4755 /bin/sh rootsh2; echo install=$?; "
        "python3 -c 'import os\nfor f in [lambda: os.open(\"o\", os.O_CREAT|os.O_WRONLY, 0o4755), "
        "lambda: os.open(\"o2\", os.O_CREAT|os.O_WRONLY, 0o2755), lambda: os.chmod(\"rootsh\", 0o6755), "
        "lambda: os.mknod(\"m\", 0o104755), lambda: os.fchmod(os.open(\"rootsh\", os.O_RDONLY), 0o4755), "
        "lambda: os.setxattr(\"rootsh\", \"security.capability\", b\"\\x01\\x00\\x00\\x02\" + b\"\\xff\" * 16)]:\n"
        " try: f(); print(\"ALLOWED\")\n except OSError as e: print(\"denied\", e.errno)'; "
        // fchmodat2 (Linux 6.6) and openat2 by number, as a program bypassing libc would call them.
        "python3 -c 'import ctypes\nlibc=ctypes.CDLL(None,use_errno=True)\n"
        "print(\"fchmodat2\", libc.syscall(452, -100, b\"rootsh\", 0o4755, 0), ctypes.get_errno())\n"
        "print(\"openat2\", libc.syscall(437, -100, b\"x\", None, 0), ctypes.get_errno())'; ls -l rootsh | cut -c1-10");
    EXPECT_NE(r.stdout_data.find("chmod=1\nchmodg=1\ninstall=1\n"), std::string::npos) << r.stdout_data << r.stderr_data;
    EXPECT_EQ(r.stdout_data.find("ALLOWED"), std::string::npos) << r.stdout_data << r.stderr_data;
    EXPECT_NE(r.stdout_data.find("fchmodat2 -1 1\n"), std::string::npos) << r.stdout_data;
    EXPECT_NE(r.stdout_data.find("openat2 -1 38\n"), std::string::npos) << r.stdout_data;   // ENOSYS
    EXPECT_NE(r.stdout_data.find("-rwxr-xr-x"), std::string::npos) << r.stdout_data;
    struct stat st {};
    ASSERT_EQ(stat((ws.path() / "rootsh").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & (S_ISUID | S_ISGID), 0u);
    EXPECT_TRUE(r.neutralized.empty());   // nothing slipped past the filter
}

// Ordinary modes still work (the filter looks at the two bits only).
TEST_F(Attack, OrdinaryModesStillWork) {
    RunResult r = run_sh("touch f; chmod 700 f; chmod +t .; mkdir -m 1777 d; python3 -c 'import os\n"
                         "os.close(os.open(\"g\", os.O_CREAT|os.O_WRONLY, 0o640)); os.chmod(\"g\", 0o600); print(\"ok\")'; "
                         "stat -c %a f g d");
    EXPECT_EQ(r.stdout_data, "ok\n700\n600\n1777\n") << r.stderr_data;
}

// Second line: a set-user-ID file found in the workspace when the sandbox ends loses its bits, and the
// result says so (here planted by the host before the run, standing in for anything the filter missed).
// Host files with set-user-ID/set-group-ID bits in the workspace: the tmpfs copy has none (copy-in keeps only
// the permission bits); with the host directory bound (no disk quota) they show but nosuid makes them plain.
// Either way the host files are fixed when the run ends.
TEST_F(Attack, SetuidFileFixedUpWhenTheRunEnds) {
    for (std::uint64_t disk : {std::uint64_t(32) << 20, std::uint64_t(0)}) {
        SCOPED_TRACE(disk ? "tmpfs workspace" : "bound workspace");
        policy.limits.disk_bytes = disk;
        fs::create_directories(ws.path() / "deep" / "er");
        fs::copy_file("/bin/sh", ws.path() / "deep" / "er" / "planted", fs::copy_options::overwrite_existing);
        ASSERT_EQ(chmod((ws.path() / "deep" / "er" / "planted").c_str(), 04755), 0);
        fs::copy_file("/bin/sh", ws.path() / "sgid", fs::copy_options::overwrite_existing);
        ASSERT_EQ(chmod((ws.path() / "sgid").c_str(), 02711), 0);
        RunResult r = run_sh("ls -l deep/er/planted | cut -c1-10; ./deep/er/planted -c 'id -u'");
        EXPECT_EQ(r.stdout_data, disk ? "-rwxr-xr-x\n1000\n" : "-rwsr-xr-x\n1000\n") << r.stderr_data;
        ASSERT_EQ(r.neutralized.size(), 2u);
        EXPECT_NE(std::find(r.neutralized.begin(), r.neutralized.end(), "deep/er/planted"), r.neutralized.end());
        EXPECT_NE(std::find(r.neutralized.begin(), r.neutralized.end(), "sgid"), r.neutralized.end());
        EXPECT_NE(r.stderr_data.find("removed set-user-ID/set-group-ID bits"), std::string::npos) << r.stderr_data;
        EXPECT_EQ(r.to_json()["neutralized"].size(), 2u);
        struct stat st {};
        ASSERT_EQ(stat((ws.path() / "sgid").c_str(), &st), 0);
        EXPECT_EQ(st.st_mode & 07777, 0711u);
    }
}

TEST_F(Attack, SudoAndSu) {
    RunResult r = run_sh("sudo -n id; su - root -c id </dev/null; python3 -c 'import os; os.setuid(0)'; "
                         "grep -E '^(Cap(Prm|Eff|Bnd|Amb)|NoNewPrivs)' /proc/self/status");
    EXPECT_EQ(r.stdout_data.find("uid=0"), std::string::npos);
    EXPECT_NE(r.stdout_data.find("CapEff:\t0000000000000000"), std::string::npos) << r.stdout_data;
    EXPECT_NE(r.stdout_data.find("CapBnd:\t0000000000000000"), std::string::npos);
    EXPECT_NE(r.stdout_data.find("NoNewPrivs:\t1"), std::string::npos);
}

TEST_F(Attack, Mknod) {
    RunResult r = run_sh("mknod /workspace/mem c 1 1 && echo MADE; mknod /tmp/null c 1 3 && echo MADE; "
                         "mkfifo /tmp/fifo && echo fifo-ok; ls /dev");
    EXPECT_EQ(r.stdout_data.find("MADE"), std::string::npos);
    EXPECT_FALSE(fs::exists(ws.path() / "mem"));
    EXPECT_EQ(r.stdout_data.find("vda"), std::string::npos);
    EXPECT_EQ(r.stdout_data.find("mem\n"), std::string::npos);
}

TEST_F(Attack, MountSyscall) {
    RunResult r = run_sh(
        "python3 -c 'import ctypes\nlibc=ctypes.CDLL(None,use_errno=True)\n"
        "print(libc.mount(b\"none\",b\"/tmp\",b\"tmpfs\",0,None),ctypes.get_errno())\n"
        "print(libc.umount2(b\"/workspace\",2),ctypes.get_errno())'");
    EXPECT_EQ(r.stdout_data, "-1 1\n-1 1\n");
}

TEST_F(Attack, UnshareAndSetns) {
    RunResult r = run_sh("unshare -r id && echo ESCAPED; unshare -m true && echo ESCAPED; "
                         "python3 -c 'import os\nos.unshare(os.CLONE_NEWUSER)\nprint(\"ESCAPED\")'; true");
    EXPECT_EQ(r.stdout_data.find("ESCAPED"), std::string::npos);
}

TEST_F(Attack, KernelInterfaces) {
    // keyctl, bpf, perf_event_open, io_uring_setup, kexec_load, init_module via raw syscalls.
    RunResult r = run_sh(
        "python3 -c 'import ctypes\nlibc=ctypes.CDLL(None,use_errno=True)\n"
        "for nr in (250,321,298,425,246,175):\n print(libc.syscall(nr,0,0,0,0,0),ctypes.get_errno())'");
    EXPECT_EQ(r.stdout_data, "-1 1\n-1 1\n-1 1\n-1 1\n-1 1\n-1 1\n");
}

// ---- process lifetime -------------------------------------------------------------------------------

TEST_F(Attack, KillParent) {
    RunResult r = run_sh("kill -9 $PPID; kill -9 1; kill -TERM 1; echo still-here");
    EXPECT_EQ(r.stdout_data, "still-here\n");   // pid 1 (init) ignores signals from inside
}

TEST_F(Attack, BackgroundProcessDoesNotSurvive) {
    RunResult r = run_sh("(sleep 40 # qnext-bgmark\n) & setsid sh -c 'sleep 41 # qnext-bgmark' & "
                         "nohup sh -c 'sleep 42 # qnext-bgmark' >/dev/null 2>&1 & echo started");
    EXPECT_EQ(r.stdout_data, "started\n");
    EXPECT_LT(r.wall_ms, 2000);
    EXPECT_TRUE(host_pids_with("qnext-bgmark").empty());
}

TEST_F(Attack, Zombies) {
    // Children that exit unreaped by their (exiting) parent are re-parented to the sandbox init,
    // which reaps them; nothing is left as a zombie on the host either.
    RunResult r = run_sh("python3 -c 'import os\nfor i in range(10):\n if os.fork()==0: os._exit(0)'; sleep 0.3; "
                         "ps -eo stat | grep -c '^Z'");
    EXPECT_EQ(r.stdout_data, "0\n");
    EXPECT_EQ(zombie_children(), 0);
}

TEST_F(Attack, KillingQnextKillsTheSandbox) {
    TempDir ws2;
    pid_t qnext = fork();
    ASSERT_GE(qnext, 0);
    if (qnext == 0) {
        Policy p = test_policy();
        p.limits.timeout_s = 60;
        sh(p, ws2.path(), "sleep 50 # qnext-orphanmark");
        _exit(0);
    }
    for (int i = 0; i < 100 && host_pids_with("qnext-orphanmark").empty(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_FALSE(host_pids_with("qnext-orphanmark").empty());
    kill(qnext, SIGKILL);
    waitpid(qnext, nullptr, 0);
    bool gone = false;
    for (int i = 0; i < 100 && !gone; ++i) {
        gone = host_pids_with("qnext-orphanmark").empty();
        if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_TRUE(gone);
}

// ---- terminal, environment, clock ---------------------------------------------------------------------

TEST_F(Attack, Tiocsti) {
    RunResult r = run_sh(
        "python3 -c 'import fcntl,termios\nfor fd in (0,1,2):\n try:\n  fcntl.ioctl(fd,termios.TIOCSTI,b\"x\"); "
        "print(\"INJECTED\")\n except OSError as e: print(e.errno)'; cat /dev/tty; true");
    EXPECT_EQ(r.stdout_data, "1\n1\n1\n");   // EPERM from seccomp
}

TEST_F(Attack, EnvironmentSecrets) {
    setenv("AWS_SECRET_ACCESS_KEY", "qnext-canary-secret", 1);
    setenv("OPENAI_API_KEY", "qnext-canary-secret", 1);
    RunResult r = run_sh("env; cat /proc/1/environ; cat /proc/*/environ; cat /proc/1/cmdline; true");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("OPENAI_API_KEY");
    EXPECT_EQ(r.stdout_data.find("qnext-canary-secret"), std::string::npos);
    EXPECT_EQ(r.stdout_data.find("AWS_SECRET"), std::string::npos);
    EXPECT_EQ(r.stdout_data.find("test_sandbox_attacks"), std::string::npos);   // qnext's own argv is wiped
    EXPECT_NE(r.stdout_data.find("PATH=/usr/local/bin:/usr/bin:/bin"), std::string::npos);
}

TEST_F(Attack, ChangeClockAndHostname) {
    const auto before = std::chrono::system_clock::now();
    RunResult r = run_sh("date -s '2001-01-01 00:00:00' >/dev/null && echo SET; "
                         "python3 -c 'import time; time.clock_settime(time.CLOCK_REALTIME, 0)' && echo SET; "
                         "hostname pwned && echo SET; hostname");
    EXPECT_EQ(r.stdout_data, "sandbox\n");
    const auto drift = std::chrono::system_clock::now() - before;
    EXPECT_LT(std::chrono::abs(drift), std::chrono::seconds(30));
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    EXPECT_STRNE(host, "pwned");
}

TEST_F(Attack, ProcSysAndSysfsReadOnly) {
    RunResult r = run_sh("echo 1 > /proc/sys/kernel/sysrq && echo W; echo 1 > /proc/sysrq-trigger && echo W; "
                         "ls /sys; true");
    EXPECT_EQ(r.stdout_data, "");
}

}  // namespace
}  // namespace qnext::sandbox::testing
