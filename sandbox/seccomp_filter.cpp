// The sandbox's seccomp filter, built with libseccomp in the parent and exported as a BPF program
// (struct sock_filter[]) that the child installs with prctl(PR_SET_SECCOMP) right before exec.
#include "sandbox/seccomp_filter.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "sandbox/sandbox.h"

namespace qnext::sandbox::detail {
namespace {

struct CtxDeleter {
    void operator()(scmp_filter_ctx c) const { seccomp_release(c); }
};

void check(int rc, const char* what) {
    if (rc < 0) throw SandboxError(std::string("seccomp filter: ") + what + ": " + std::strerror(-rc));
}

// Deny a syscall by name with errno; names unknown to this libseccomp/arch are skipped.
void deny(scmp_filter_ctx ctx, const char* name, int err = EPERM) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) return;
    check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(err), nr, 0), name);
}

// Deny a syscall by number (for calls newer than this libseccomp: since Linux 5.1 new syscalls have one
// number on every architecture), with optional argument conditions.
void deny_nr(scmp_filter_ctx ctx, int nr, int err, const char* what, unsigned n_args = 0,
             scmp_arg_cmp cmp = scmp_arg_cmp{}) {
    if (n_args)
        check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(err), nr, 1, cmp), what);
    else
        check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(err), nr, 0), what);
}

// Numbers of syscalls that libseccomp 2.5 may not know by name.
constexpr int kNrFchmodat2 = 452;
constexpr int kNrStatmount = 457, kNrListmount = 458;
constexpr int kNrSetxattrat = 463, kNrRemovexattrat = 466, kNrOpenTreeAttr = 467;

int resolve(const char* name, int fallback = -1) {
    int nr = seccomp_syscall_resolve_name(name);
    return nr == __NR_SCMP_ERROR ? fallback : nr;
}

}  // namespace

std::vector<unsigned char> build_seccomp_bpf(bool allow_network) {
    std::unique_ptr<void, CtxDeleter> holder(seccomp_init(SCMP_ACT_ALLOW));
    scmp_filter_ctx ctx = holder.get();
    if (!ctx) throw SandboxError("seccomp filter: seccomp_init failed");
    // Syscalls of foreign ABIs (32-bit int 0x80, x32) kill the process.
    check(seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS), "bad-arch action");

    // Debugging other processes and reading their memory.
    for (const char* n : {"ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd"}) deny(ctx, n);
    // Mounts and namespaces.
    for (const char* n : {"mount", "umount", "umount2", "pivot_root", "chroot", "unshare", "setns", "fsopen",
                          "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr"})
        deny(ctx, n);
    // Kernel keyrings, BPF, perf, kernel images and modules, reboot, swap, accounting, quotas.
    for (const char* n : {"keyctl", "add_key", "request_key", "bpf", "perf_event_open", "kexec_load",
                          "kexec_file_load", "reboot", "init_module", "finit_module", "delete_module", "swapon",
                          "swapoff", "acct", "quotactl", "syslog", "lookup_dcookie", "userfaultfd",
                          "open_by_handle_at", "name_to_handle_at", "iopl", "ioperm", "vhangup", "uselib",
                          "nfsservctl", "fanotify_init"})
        deny(ctx, n);
    // io_uring bypasses seccomp for the operations it performs.
    for (const char* n : {"io_uring_setup", "io_uring_enter", "io_uring_register"}) deny(ctx, n);
    // Clock changes.
    for (const char* n : {"settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "stime"}) deny(ctx, n);

    // clone3 takes its flags in memory seccomp cannot read: make libc fall back to clone.
    deny(ctx, "clone3", ENOSYS);
    // clone with any namespace flag (x86_64: flags are the first argument).
    const std::uint64_t ns_flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
                                   CLONE_NEWNET | CLONE_NEWCGROUP | CLONE_NEWTIME;
    for (std::uint64_t bit = 1; bit; bit <<= 1) {
        if (!(ns_flags & bit)) continue;
        check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                               SCMP_A0(SCMP_CMP_MASKED_EQ, bit, bit)),
              "clone");
    }

    // Terminal input injection.
    check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                           SCMP_A1(SCMP_CMP_MASKED_EQ, 0xFFFFFFFFu, TIOCSTI)),
          "ioctl TIOCSTI");
    check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                           SCMP_A1(SCMP_CMP_MASKED_EQ, 0xFFFFFFFFu, TIOCLINUX)),
          "ioctl TIOCLINUX");

    // Set-user-ID / set-group-ID bits. The workspace is a host directory: a setuid file created there is a
    // setuid file on the host (owned by the workspace's owner, root when qnext runs as root), so no mode with
    // S_ISUID or S_ISGID may be set, neither by chmod nor at creation (open/creat/mknod modes). openat2 takes
    // its mode in memory seccomp cannot read: ENOSYS makes libc and runtimes use openat. File capabilities
    // need CAP_SETFCAP, which the command never has; the *xattrat calls are refused like openat2.
    // (Directories ignore S_ISUID/S_ISGID in mkdir's mode, so mkdir needs no rule.)
    struct ModeArg {
        const char* name;
        int fallback_nr;
        unsigned arg;
    };
    for (const ModeArg& m : {ModeArg{"chmod", -1, 1}, ModeArg{"fchmod", -1, 1}, ModeArg{"fchmodat", -1, 2},
                             ModeArg{"fchmodat2", kNrFchmodat2, 2}, ModeArg{"creat", -1, 1}, ModeArg{"open", -1, 2},
                             ModeArg{"openat", -1, 3}, ModeArg{"mknod", -1, 1}, ModeArg{"mknodat", -1, 2}}) {
        int nr = resolve(m.name, m.fallback_nr);
        if (nr < 0) continue;
        for (scmp_datum_t bit : {scmp_datum_t(S_ISUID), scmp_datum_t(S_ISGID)})
            deny_nr(ctx, nr, EPERM, m.name, 1, SCMP_CMP(m.arg, SCMP_CMP_MASKED_EQ, bit, bit));
    }
    deny_nr(ctx, resolve("openat2", 437), ENOSYS, "openat2");
    deny_nr(ctx, resolve("setxattrat", kNrSetxattrat), ENOSYS, "setxattrat");
    deny_nr(ctx, resolve("removexattrat", kNrRemovexattrat), ENOSYS, "removexattrat");
    // The mount tree (host paths of the binds) and mounts made from a tree.
    deny_nr(ctx, resolve("statmount", kNrStatmount), ENOSYS, "statmount");
    deny_nr(ctx, resolve("listmount", kNrListmount), ENOSYS, "listmount");
    deny_nr(ctx, resolve("open_tree_attr", kNrOpenTreeAttr), EPERM, "open_tree_attr");

    // Sockets: AF_UNIX only (plus AF_INET/AF_INET6 and route netlink when the network is allowed): every
    // other family below AF_MAX is denied one by one, and everything from AF_MAX up at once (libseccomp
    // refuses two comparisons of one argument in a rule, so ranges between allowed families cannot be used).
    std::vector<int> allowed = {AF_UNIX};
    if (allow_network) allowed = {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK};
    for (const char* call : {"socket", "socketpair"}) {
        int nr = seccomp_syscall_resolve_name(call);
        for (int fam = 0; fam < AF_MAX; ++fam) {
            if (std::find(allowed.begin(), allowed.end(), fam) != allowed.end()) continue;
            check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), nr, 1, SCMP_A0(SCMP_CMP_EQ, scmp_datum_t(fam))),
                  call);
        }
        check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), nr, 1, SCMP_A0(SCMP_CMP_GE, scmp_datum_t(AF_MAX))),
              call);
    }

    // Export to memory through a memfd.
    int fd = memfd_create("qnext-seccomp", MFD_CLOEXEC);
    if (fd < 0) throw SandboxError(std::string("seccomp filter: memfd_create: ") + std::strerror(errno));
    int rc = seccomp_export_bpf(ctx, fd);
    if (rc < 0) {
        close(fd);
        check(rc, "export");
    }
    off_t size = lseek(fd, 0, SEEK_END);
    std::vector<unsigned char> bpf(size_t(size > 0 ? size : 0));
    ssize_t got = pread(fd, bpf.data(), bpf.size(), 0);
    close(fd);
    if (got != ssize_t(bpf.size()) || bpf.empty() || bpf.size() % 8 != 0)
        throw SandboxError("seccomp filter: export produced no program");
    return bpf;
}

}  // namespace qnext::sandbox::detail
