// Child side of the sandbox: runs between fork and exec, so only async-signal-safe calls, no
// allocation, no exceptions. Three processes:
//   C1 "monitor": joins the user namespace, unshares the other namespaces, forks C2, then waits for
//      it while obeying the control pipe ('K' kill, 'T' terminate, EOF = parent gone -> kill), and
//      reports the sandbox's total CPU time when C2 is gone.
//   C2 "init": pid 1 of the new PID namespace; builds the filesystem view, forks C3, reaps every
//      process, reports the command's wait status and exits (the kernel then kills the rest).
//   C3 "command": setsid, rlimits, no capabilities, no_new_privs, seccomp, exec.
// In Mode::None there are no namespaces: C2 is a child subreaper that kills C3's process group and
// every re-parented orphan when C3 exits.
#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <grp.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "sandbox/plan.h"

namespace qnext::sandbox::detail {
namespace {

volatile pid_t g_command_pid = 0;   // C2: pid of C3 (for signal forwarding in Mode::None)

void report(int fd, const StatusMsg& m) {
    if (fd < 0) return;
    ssize_t rc;
    do rc = ::write(fd, &m, sizeof m);
    while (rc < 0 && errno == EINTR);
}

[[noreturn]] void fail(const Plan& plan, std::int32_t step, int err) {
    StatusMsg m;
    m.kind = StatusMsg::SetupFailed;
    m.step = step;
    m.err = err;
    report(plan.status_fd, m);
    _exit(125);
}

// Close every fd except the (up to two) given ones.
void close_all_except(int a, int b) {
    if (a > b) std::swap(a, b);
    unsigned lo = 0;
    for (int keep : {a, b}) {
        if (keep < 0) continue;
        if (unsigned(keep) > lo) close_range(lo, unsigned(keep) - 1, 0);
        lo = unsigned(keep) + 1;
    }
    close_range(lo, ~0U, 0);
}

void reset_signals() {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; ++s) sigaction(s, &sa, nullptr);  // errors for KILL/STOP are fine
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
}

void set_handler(int sig, void (*fn)(int)) {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sa.sa_flags = SA_RESTART;
    sigaction(sig, &sa, nullptr);
}

// Zero this copy of qnext's argv and environment strings (see Plan::args_begin).
void wipe_qnext_args(const Plan& plan) {
    if (plan.args_end > plan.args_begin)
        std::memset(reinterpret_cast<void*>(plan.args_begin), 0, plan.args_end - plan.args_begin);
    if (plan.env_end > plan.env_begin)
        std::memset(reinterpret_cast<void*>(plan.env_begin), 0, plan.env_end - plan.env_begin);
}

// ---- filesystem view (C2, isolated) -----------------------------------------------------------

int setattr(const char* path, std::uint64_t set, bool recursive) {
    struct mount_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.attr_set = set;
    return mount_setattr(AT_FDCWD, path, recursive ? AT_RECURSIVE : 0, &attr, sizeof attr);
}

int mkdir_ok(const char* path) {
    if (mkdir(path, 0755) == 0 || errno == EEXIST) return 0;
    return -1;
}

int touch(const char* path) {
    int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

int run_step(const FsStep& s) {
    const char* dst = s.dst.c_str();
    std::uint64_t flags = MOUNT_ATTR_NOSUID | (s.devices ? MOUNT_ATTR_NOEXEC : MOUNT_ATTR_NODEV) |
                          (s.writable ? 0 : MOUNT_ATTR_RDONLY);
    switch (s.kind) {
        case FsStep::Dir: return mkdir_ok(dst);
        case FsStep::Symlink: return symlink(s.text.c_str(), dst);
        case FsStep::BindDir:
            if (mkdir_ok(dst) < 0) return -1;
            if (mount(s.src.c_str(), dst, nullptr, MS_BIND | MS_REC, nullptr) < 0) return -1;
            return setattr(dst, flags, true);
        case FsStep::BindFile:
            if (touch(dst) < 0) return -1;
            if (mount(s.src.c_str(), dst, nullptr, MS_BIND, nullptr) < 0) return -1;
            return setattr(dst, flags, false);
        case FsStep::WriteFile: {
            int fd = open(dst, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
            if (fd < 0) return -1;
            size_t off = 0;
            while (off < s.text.size()) {
                ssize_t n = ::write(fd, s.text.data() + off, s.text.size() - off);
                if (n < 0) {
                    if (errno == EINTR) continue;
                    int e = errno;
                    close(fd);
                    errno = e;
                    return -1;
                }
                off += size_t(n);
            }
            return close(fd);
        }
        case FsStep::Tmpfs:
            if (mkdir_ok(dst) < 0) return -1;
            return mount("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV, s.text.c_str());
        case FsStep::Proc:
            if (mkdir_ok(dst) < 0) return -1;
            return mount("proc", dst, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
        case FsStep::MoveMount:
            if (mkdir_ok(dst) < 0) return -1;
            if (move_mount(s.fd, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH) < 0) return -1;
            return 0;
    }
    errno = EINVAL;
    return -1;
}

void build_root(const Plan& plan) {
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) fail(plan, StMountPrivate, errno);
    // The new root is a small tmpfs; after pivot_root the host root stays reachable at /oldroot
    // (the tmpfs moved away from the host's /tmp, so nothing there is shadowed).
    if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") < 0)
        fail(plan, StRootTmpfs, errno);
    if (chdir("/tmp") < 0 || mkdir("oldroot", 0755) < 0) fail(plan, StRootTmpfs, errno);
    if (syscall(SYS_pivot_root, ".", "oldroot") < 0 || chdir("/") < 0) fail(plan, StPivot, errno);
    for (size_t i = 0; i < plan.steps.size(); ++i)
        if (run_step(plan.steps[i]) < 0) fail(plan, std::int32_t(i), errno);
    if (umount2("/oldroot", MNT_DETACH) < 0 || rmdir("/oldroot") < 0) fail(plan, StUmountOld, errno);
    if (setattr("/", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, false) < 0)
        fail(plan, StRootRo, errno);
    if (sethostname(plan.hostname.data(), plan.hostname.size()) < 0) fail(plan, StHostname, errno);
    if (!plan.allow_network) {
        int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq ifr;
        std::memset(&ifr, 0, sizeof ifr);
        std::memcpy(ifr.ifr_name, "lo", 3);
        if (sock < 0 || ioctl(sock, SIOCGIFFLAGS, &ifr) < 0) fail(plan, StLoopback, errno);
        ifr.ifr_flags = short(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
        if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0) fail(plan, StLoopback, errno);
        close(sock);
    }
}

// ---- C3: the command ---------------------------------------------------------------------------

[[noreturn]] void command_main(Plan& plan) {
    const bool iso = plan.mode == Mode::Isolated;
    reset_signals();
    if (setsid() < 0) fail(plan, StSetsid, errno);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) fail(plan, StPdeath, errno);
    // The command, not qnext, is what the kernel should kill first when memory runs out (raising the score
    // needs no privilege; the sandbox's monitor and init are copies of qnext and keep its score).
    if (int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC); fd >= 0) {
        ssize_t n = ::write(fd, "1000", 4);
        (void)n;
        close(fd);
    }
    for (const Rlimit& r : plan.rlimits) {
        struct rlimit rl{r.soft, r.hard};
        if (setrlimit(r.resource, &rl) < 0) fail(plan, StRlimit, errno);
    }
    // Everything but stdio closes on exec (the status pipe is already close-on-exec).
    close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    if (chdir(plan.chdir_to.c_str()) < 0) fail(plan, StChdir, errno);
    if (iso) {
        for (int cap = 0; cap <= 63; ++cap)
            if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) fail(plan, StCaps, errno);
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) fail(plan, StCaps, errno);
        const unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                                   SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
                                   SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
        if (prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) < 0) fail(plan, StCaps, errno);
        struct __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
        struct __user_cap_data_struct data[2];
        std::memset(data, 0, sizeof data);
        if (syscall(SYS_capset, &hdr, data) < 0) fail(plan, StCaps, errno);
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fail(plan, StNoNewPrivs, errno);
    if (iso && plan.landlock_scope) {
        // struct landlock_ruleset_attr {handled_access_fs, handled_access_net, scoped}: no file system or
        // network rules, only the scopes LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL.
        const std::uint64_t attr[3] = {0, 0, 1u | 2u};
        int fd = int(syscall(SYS_landlock_create_ruleset, attr, sizeof attr, 0u));
        if (fd < 0) fail(plan, StLandlock, errno);
        if (syscall(SYS_landlock_restrict_self, fd, 0u) < 0) fail(plan, StLandlock, errno);
        close(fd);
    }
    if (iso && !plan.seccomp_bpf.empty()) {
        struct sock_fprog prog;
        prog.len = static_cast<unsigned short>(plan.seccomp_bpf.size() / sizeof(struct sock_filter));
        prog.filter = reinterpret_cast<struct sock_filter*>(plan.seccomp_bpf.data());
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0) fail(plan, StSeccomp, errno);
    }
    int err = ENOENT;
    for (const std::string& path : plan.exec_candidates) {
        execve(path.c_str(), plan.argv.data(), plan.envp.data());
        if (errno != ENOENT && errno != ENOTDIR) err = errno;   // keep the most telling error
    }
    StatusMsg m;
    m.kind = StatusMsg::ExecFailed;
    m.err = err;
    report(plan.status_fd, m);
    _exit(127);
}

// ---- C2: init ------------------------------------------------------------------------------------

// pid 1: SIGTERM from the parent (outside the namespace: si_pid reads 0) goes to every other
// process of the namespace; the same signal sent from inside the sandbox is ignored.
void forward_term_ns(int, siginfo_t* info, void*) {
    if (info && info->si_pid == 0) kill(-1, SIGTERM);
}

// Mode::None: kill the command's group and every child re-parented to us (we are a subreaper).
void kill_tree(int sig) {
    if (g_command_pid > 0) kill(-g_command_pid, sig);
    char path[64] = "/proc/self/task/";
    // tid of this single-threaded process == pid
    pid_t self = getpid();
    char num[16];
    int n = 0;
    for (pid_t v = self; v > 0; v /= 10) num[n++] = char('0' + v % 10);
    size_t len = std::strlen(path);
    while (n > 0) path[len++] = num[--n];
    std::memcpy(path + len, "/children", 10);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char buf[4096];
    ssize_t got = read(fd, buf, sizeof buf - 1);
    close(fd);
    pid_t pid = 0;
    for (ssize_t i = 0; i < got; ++i) {
        if (buf[i] >= '0' && buf[i] <= '9') pid = pid * 10 + (buf[i] - '0');
        else if (pid > 0) { kill(pid, sig); pid = 0; }
    }
    if (pid > 0) kill(pid, sig);
}
void forward_term_tree(int) { kill_tree(SIGTERM); }
void kill_tree_handler(int) { kill_tree(SIGKILL); }

[[noreturn]] void init_main(Plan& plan) {
    const bool iso = plan.mode == Mode::Isolated;
    if (prctl(PR_SET_PDEATHSIG, iso ? SIGKILL : SIGUSR2) < 0) fail(plan, StPdeath, errno);
    close(plan.control_fd);
    if (iso) {
        build_root(plan);
        struct sigaction sa;
        std::memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = forward_term_ns;
        sa.sa_flags = SA_RESTART | SA_SIGINFO;
        sigaction(SIGTERM, &sa, nullptr);
    } else {
        if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) fail(plan, StForkCmd, errno);
        set_handler(SIGTERM, forward_term_tree);
        set_handler(SIGUSR2, kill_tree_handler);
    }
    pid_t cmd = _Fork();
    if (cmd < 0) fail(plan, StForkCmd, errno);
    if (cmd == 0) command_main(plan);
    g_command_pid = cmd;
    close_all_except(plan.status_fd, -1);
    for (;;) {
        int st = 0;
        pid_t pid = wait4(-1, &st, __WALL, nullptr);
        if (pid < 0) {
            if (errno == EINTR) continue;
            _exit(0);   // ECHILD: nothing left
        }
        if (pid != cmd) continue;
        StatusMsg m;
        m.kind = StatusMsg::CommandExited;
        m.status = st;
        report(plan.status_fd, m);
        if (iso) _exit(0);   // leaving pid 1 kills whatever is left in the namespace
        kill_tree(SIGKILL);
        g_command_pid = 0;
        for (;;) {
            pid_t p = wait4(-1, &st, __WALL, nullptr);
            if (p < 0 && errno != EINTR) _exit(0);
            if (p > 0) kill_tree(SIGKILL);
        }
    }
}

}  // namespace

// ---- C1: monitor --------------------------------------------------------------------------------

void child_main(Plan& plan) {
    const bool iso = plan.mode == Mode::Isolated;
    reset_signals();
    // Into the sandbox's control group first: everything forked from here on is counted (and limited) there.
    for (int fd : plan.cgroup_fds) {
        if (::write(fd, "0", 1) != 1) fail(plan, StCgroup, errno);
        close(fd);
    }
    // Monitor and init are forks of qnext and show its resident size: as root, keep the OOM killer off them
    // (the command raises its own score again, see command_main); unprivileged this is refused, harmlessly.
    if (plan.drop_groups) {
        if (int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC); fd >= 0) {
            ssize_t n = ::write(fd, "-1000", 5);
            (void)n;
            close(fd);
        }
    }
    // Monitor and init are copies of qnext's memory (environment included): not dumpable, so the
    // sandboxed command cannot read them through /proc/<pid>/{environ,mem,...} or ptrace.
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) fail(plan, StPdeath, errno);
    wipe_qnext_args(plan);
    prctl(PR_SET_NAME, "qnext-sandbox", 0, 0, 0);
    if (iso) {
        if (plan.drop_groups && setgroups(0, nullptr) < 0) fail(plan, StSetgroups, errno);
        if (setns(plan.userns_fd, CLONE_NEWUSER) < 0) fail(plan, StSetns, errno);
        if (prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP, 0, 0, 0) < 0) fail(plan, StSecurebits, errno);
        if (setresgid(plan.gid, plan.gid, plan.gid) < 0 || setresuid(plan.uid, plan.uid, plan.uid) < 0)
            fail(plan, StSetid, errno);
        int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;
        if (!plan.allow_network) flags |= CLONE_NEWNET;
        if (unshare(flags) < 0) fail(plan, StUnshare, errno);
    } else if (setsid() < 0) {
        fail(plan, StSetsid, errno);
    }
    pid_t init = _Fork();
    if (init < 0) fail(plan, StForkInit, errno);
    if (init == 0) init_main(plan);
    close_all_except(plan.status_fd, plan.control_fd);
    int pidfd = int(syscall(SYS_pidfd_open, init, 0));
    if (pidfd < 0) {
        kill(init, SIGKILL);
        fail(plan, StPidfd, errno);
    }
    const int kill_sig = iso ? SIGKILL : SIGUSR2;
    struct pollfd fds[2] = {{plan.control_fd, POLLIN, 0}, {pidfd, POLLIN, 0}};
    for (;;) {
        int n = poll(fds, 2, -1);
        if (n < 0) continue;   // EINTR
        if (fds[0].revents) {
            char c = 0;
            ssize_t r = read(plan.control_fd, &c, 1);
            if (r <= 0 && !(r < 0 && errno == EINTR)) {   // parent gone (or closed us): kill all
                kill(init, kill_sig);
                fds[0].fd = -1;
            } else if (c == 'K') {
                kill(init, kill_sig);
            } else if (c == 'T') {
                kill(init, SIGTERM);
            }
        }
        if (fds[1].revents) {
            int st = 0;
            struct rusage ru;
            std::memset(&ru, 0, sizeof ru);
            pid_t p = wait4(init, &st, __WALL, &ru);
            if (p < 0 && errno == EINTR) continue;
            StatusMsg m;
            m.kind = StatusMsg::SandboxDone;
            m.status = st;
            m.cpu_us = std::int64_t(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
                       ru.ru_stime.tv_usec;
            m.maxrss_kb = ru.ru_maxrss;
            report(plan.status_fd, m);
            _exit(0);
        }
    }
}

}  // namespace qnext::sandbox::detail
