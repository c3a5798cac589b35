// Parent side: turn a Policy + SpawnRequest into the precomputed Plan the child executes.
#include "sandbox/plan.h"

#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <mutex>
#include <set>

#include "sandbox/seccomp_filter.h"

namespace qnext::sandbox::detail {
namespace fs = std::filesystem;

const char* stage_name(std::int32_t stage) {
    switch (stage) {
        case StSetgroups: return "dropping supplementary groups";
        case StSetns: return "joining the sandbox user namespace";
        case StSecurebits: return "setting securebits";
        case StSetid: return "switching to the sandbox uid/gid";
        case StUnshare: return "creating mount/pid/net/ipc/uts namespaces";
        case StForkInit: return "forking the sandbox init";
        case StPidfd: return "pidfd_open on the sandbox init";
        case StMountPrivate: return "making mounts private";
        case StRootTmpfs: return "mounting the new root tmpfs";
        case StPivot: return "pivot_root";
        case StUmountOld: return "detaching the host root";
        case StRootRo: return "making the new root read-only";
        case StHostname: return "setting the hostname";
        case StLoopback: return "bringing up loopback";
        case StForkCmd: return "forking the command";
        case StRlimit: return "setting resource limits";
        case StCaps: return "dropping capabilities";
        case StNoNewPrivs: return "setting no_new_privs";
        case StSeccomp: return "installing the seccomp filter";
        case StChdir: return "changing to the working directory";
        case StSetsid: return "setsid";
        case StPdeath: return "setting the parent-death signal";
        case StLandlock: return "restricting the command with a Landlock scope";
        case StCgroup: return "joining the sandbox's control group";
        default: return "sandbox setup";
    }
}

namespace {

bool under(const std::string& path, const std::string& root) {
    return path == root || (path.starts_with(root) && (root == "/" || path[root.size()] == '/'));
}

class StepBuilder {
public:
    explicit StepBuilder(std::vector<std::string> link_roots) : link_roots_(std::move(link_roots)) {}

    void add(FsStep s) {
        ensure_parent(s.dst);
        made_.insert(s.dst);
        steps_.push_back(std::move(s));
    }
    void dir(const std::string& p) {
        if (made_.count(p)) return;
        add(FsStep{FsStep::Dir, "", p, "", false, false, -1, "creating " + p});
    }
    // Map the host path `p` read-only at the same place (skipped when it does not exist).
    void host(const std::string& p) {
        struct stat st;
        if (lstat(p.c_str(), &st) < 0) return;
        std::string src = p;
        if (S_ISLNK(st.st_mode)) {
            std::error_code ec;
            fs::path target = fs::canonical(p, ec);
            if (ec) return;   // dangling link on the host
            for (const auto& r : link_roots_) {
                if (under(target.string(), r)) {
                    add(FsStep{FsStep::Symlink, "", p, fs::read_symlink(p).string(), false, false, -1,
                               "symlink " + p});
                    return;
                }
            }
            src = target.string();   // target outside the visible system: bind its contents
            if (stat(src.c_str(), &st) < 0) return;
        }
        if (S_ISDIR(st.st_mode))
            add(FsStep{FsStep::BindDir, "/oldroot" + src, p, "", false, false, -1, "read-only bind of " + p});
        else if (S_ISREG(st.st_mode))
            add(FsStep{FsStep::BindFile, "/oldroot" + src, p, "", false, false, -1, "read-only bind of " + p});
        else
            throw SandboxError("sandbox policy: " + p + " is neither a file nor a directory");
    }
    std::vector<FsStep> take() { return std::move(steps_); }

private:
    void ensure_parent(const std::string& p) {
        std::string parent = fs::path(p).parent_path().string();
        if (parent.empty() || made_.count(parent)) return;
        ensure_parent(parent);
        made_.insert(parent);
        steps_.push_back(FsStep{FsStep::Dir, "", parent, "", false, false, -1, "creating " + parent});
    }

    std::vector<std::string> link_roots_;
    std::vector<FsStep> steps_;
    std::set<std::string> made_{"/"};
};

const std::vector<unsigned char>& cached_bpf(bool allow_network) {
    static std::mutex mu;
    static std::vector<unsigned char> cache[2];
    std::lock_guard<std::mutex> lock(mu);
    auto& c = cache[allow_network ? 1 : 0];
    if (c.empty()) c = build_seccomp_bpf(allow_network);
    return c;
}

void check_env_name(const std::string& k) {
    if (k.empty() || k.find('=') != std::string::npos || k.find('\0') != std::string::npos)
        throw SandboxError("sandbox: invalid environment variable name \"" + k + "\"");
}

}  // namespace

int landlock_abi() {
    static const int abi = [] {
        // landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
        long v = syscall(SYS_landlock_create_ruleset, nullptr, 0, 1u);
        return v > 0 ? int(v) : 0;
    }();
    return abi;
}

Plan make_plan(const Policy& policy, const SpawnRequest& req, const Limits& lim) {
    Plan plan;
    plan.mode = policy.mode;
    plan.allow_network = policy.allow_network;
    plan.uid = policy.uid;
    plan.gid = policy.gid;
    plan.hostname = policy.hostname;
    const bool iso = policy.mode == Mode::Isolated;

    if (req.argv.empty() || req.argv[0].empty()) throw SandboxError("sandbox: empty command");
    for (const auto& a : req.argv)
        if (a.find('\0') != std::string::npos) throw SandboxError("sandbox: NUL byte in an argument");
    if (req.workspace.empty()) throw SandboxError("sandbox: no workspace directory given");
    std::error_code ec;
    fs::path ws = fs::canonical(req.workspace, ec);
    if (ec || !fs::is_directory(ws))
        throw SandboxError("sandbox: workspace " + req.workspace.string() + " is not an existing directory");
    if (ws == "/") throw SandboxError("sandbox: refusing to use / as the workspace");
    const fs::path cwd(req.cwd);
    if (cwd.is_absolute()) throw SandboxError("sandbox: cwd must be relative to the workspace");
    for (const auto& part : cwd)
        if (part == "..") throw SandboxError("sandbox: cwd must not contain ..");

    // Filesystem view.
    if (iso) {
        for (const std::string& taken : {std::string("/etc"), std::string("/dev"), std::string("/proc"), std::string("/tmp")})
            if (policy.workspace_mount == taken)
                throw SandboxError("sandbox policy: workspace_mount " + taken + " is used by the sandbox itself");
        for (const auto& p : policy.ro_paths)
            if (under(policy.workspace_mount, p) || under(p, policy.workspace_mount))
                throw SandboxError("sandbox policy: workspace_mount " + policy.workspace_mount + " overlaps ro_paths " + p);
        std::vector<std::string> link_roots = policy.ro_paths;
        link_roots.push_back("/etc");
        StepBuilder b(link_roots);
        // The private /tmp first: ro_paths below /tmp (a venv of an MCP server, say) are bound on top of it, so
        // they stay visible (mounted afterwards, the tmpfs would hide them).
        for (const auto& p : policy.ro_paths)
            if (under("/tmp", p))
                throw SandboxError("sandbox policy: ro_paths " + p + " would hide the sandbox's private /tmp; "
                                   "name the directories below /tmp that the sandbox needs instead");
        b.add(FsStep{FsStep::Tmpfs, "", "/tmp",
                     "mode=1777,size=" + std::to_string(lim.tmp_bytes) + ",nr_inodes=" +
                         std::to_string(std::max<std::uint64_t>(1024, lim.tmp_bytes / 4096)),
                     false, false, -1, "mounting the /tmp tmpfs"});
        for (const auto& p : policy.ro_paths) b.host(p);
        b.dir("/etc");
        for (const auto& p : policy.etc_files) b.host(p);
        bool etc_from_host = false;
        for (const auto& p : policy.ro_paths) etc_from_host |= under("/etc", p);
        if (!etc_from_host) {
            const std::string u = std::to_string(policy.uid), g = std::to_string(policy.gid);
            b.add(FsStep{FsStep::WriteFile, "", "/etc/passwd",
                         "root:x:0:0:root:/root:/usr/sbin/nologin\nsandbox:x:" + u + ":" + g +
                             ":sandbox:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
                         false, false, -1, "writing /etc/passwd"});
            b.add(FsStep{FsStep::WriteFile, "", "/etc/group", "root:x:0:\nsandbox:x:" + g + ":\nnogroup:x:65534:\n",
                         false, false, -1, "writing /etc/group"});
            b.add(FsStep{FsStep::WriteFile, "", "/etc/hostname", policy.hostname + "\n", false, false, -1,
                         "writing /etc/hostname"});
            if (policy.allow_network) {
                b.host("/etc/hosts");
                b.host("/etc/resolv.conf");
                b.host("/etc/gai.conf");
            } else {
                b.add(FsStep{FsStep::WriteFile, "", "/etc/hosts",
                             "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t" +
                                 policy.hostname + "\n",
                             false, false, -1, "writing /etc/hosts"});
            }
        }
        // Minimal /dev: a few harmless character devices, no tty.
        b.add(FsStep{FsStep::Tmpfs, "", "/dev", "mode=0755,size=64k,nr_inodes=64", false, false, -1, "mounting /dev"});
        for (const char* d : {"null", "zero", "full", "random", "urandom"}) {
            std::string p = std::string("/dev/") + d;
            b.add(FsStep{FsStep::BindFile, "/oldroot" + p, p, "", true, true, -1, "binding " + p});
        }
        b.add(FsStep{FsStep::Symlink, "", "/dev/fd", "/proc/self/fd", false, false, -1, "symlink /dev/fd"});
        b.add(FsStep{FsStep::Symlink, "", "/dev/stdin", "/proc/self/fd/0", false, false, -1, "symlink /dev/stdin"});
        b.add(FsStep{FsStep::Symlink, "", "/dev/stdout", "/proc/self/fd/1", false, false, -1, "symlink /dev/stdout"});
        b.add(FsStep{FsStep::Symlink, "", "/dev/stderr", "/proc/self/fd/2", false, false, -1, "symlink /dev/stderr"});
        b.add(FsStep{FsStep::Symlink, "", "/dev/shm", "/tmp", false, false, -1, "symlink /dev/shm"});
        // The workspace: the quota tmpfs (spawn() fills in the MoveMount fd); without a quota a bind for
        // unprivileged users, and as root an idmapped clone (also a MoveMount filled in by spawn()).
        plan.workspace_tmpfs = lim.disk_bytes > 0;
        if (plan.workspace_tmpfs)
            b.add(FsStep{FsStep::MoveMount, "", policy.workspace_mount, "", true, false, -1,
                         "attaching the workspace tmpfs"});
        else if (geteuid() == 0)
            b.add(FsStep{FsStep::MoveMount, "", policy.workspace_mount, "", true, false, -1,
                         "attaching the idmapped workspace " + ws.string()});
        else
            b.add(FsStep{FsStep::BindDir, "/oldroot" + ws.string(), policy.workspace_mount, "", true, false, -1,
                         "binding the workspace " + ws.string()});
        b.add(FsStep{FsStep::Proc, "", "/proc", "", false, false, -1, "mounting /proc"});
        b.add(FsStep{FsStep::BindDir, "/proc/sys", "/proc/sys", "", false, false, -1, "read-only /proc/sys"});
        plan.steps = b.take();
        plan.seccomp_bpf = cached_bpf(policy.allow_network);
        // Abstract unix sockets belong to a network namespace, not to the file system: with the host network
        // kept, the command could connect to every abstract socket of the host (X11, D-Bus, systemd, ...).
        // A Landlock scope (ABI 6, Linux 6.12) confines it to sockets created inside the sandbox.
        plan.landlock_scope = landlock_abi() >= 6;
        if (policy.allow_network && !plan.landlock_scope)
            throw SandboxError("sandbox policy " + policy.name +
                               ": allow_network needs Landlock scopes (ABI 6, Linux >= 6.12) to keep the host's "
                               "abstract unix sockets out of reach; this kernel has Landlock ABI " +
                               std::to_string(landlock_abi()) + " (0 = disabled)");
        plan.drop_groups = geteuid() == 0;
        plan.chdir_to = policy.workspace_mount;
    } else {
        plan.chdir_to = ws.string();
    }
    if (!req.cwd.empty()) plan.chdir_to += "/" + cwd.lexically_normal().string();

    // Resource limits for the command (inherited by everything it starts).
    auto add = [&](int res, rlim_t soft, rlim_t hard) { plan.rlimits.push_back(Rlimit{res, soft, hard}); };
    if (lim.memory_bytes) add(RLIMIT_AS, lim.memory_bytes, lim.memory_bytes);
    if (lim.cpu_s > 0) {
        rlim_t s = rlim_t(std::ceil(lim.cpu_s));
        add(RLIMIT_CPU, s, s + 1);
    }
    // RLIMIT_NPROC counts per (user namespace, uid): in the sandbox that is exactly its own processes
    // (+2 for monitor and init). Unsandboxed it would count all of the user's host processes.
    if (iso) add(RLIMIT_NPROC, lim.max_processes + 2, lim.max_processes + 2);
    if (lim.max_file_bytes) add(RLIMIT_FSIZE, lim.max_file_bytes, lim.max_file_bytes);
    add(RLIMIT_NOFILE, lim.max_open_files, lim.max_open_files);
    add(RLIMIT_CORE, 0, 0);

    // Environment: policy values, allowed variables from qnext's environment, request values.
    std::map<std::string, std::string> env = policy.env_set;
    for (const auto& name : policy.env_pass)
        if (const char* v = std::getenv(name.c_str())) env[name] = v;
    for (const auto& [k, v] : req.env) {
        check_env_name(k);
        env[k] = v;
    }
    for (const auto& [k, v] : env) {
        if (v.find('\0') != std::string::npos) throw SandboxError("sandbox: NUL byte in variable " + k);
        plan.env_storage.push_back(k + "=" + v);
    }
    plan.argv_storage = req.argv;

    // Executable: argv[0] as given if it has a '/', else every PATH entry in order.
    const std::string& a0 = req.argv[0];
    if (a0.find('/') != std::string::npos) {
        plan.exec_candidates.push_back(a0);
    } else {
        std::string path = env.count("PATH") ? env["PATH"] : "/usr/bin:/bin";
        size_t start = 0;
        while (start <= path.size()) {
            size_t end = path.find(':', start);
            if (end == std::string::npos) end = path.size();
            std::string dir = path.substr(start, end - start);
            if (!dir.empty()) plan.exec_candidates.push_back(dir + "/" + a0);
            start = end + 1;
        }
        if (plan.exec_candidates.empty()) plan.exec_candidates.push_back(a0);
    }
    for (auto& s : plan.argv_storage) plan.argv.push_back(s.data());
    plan.argv.push_back(nullptr);
    for (auto& s : plan.env_storage) plan.envp.push_back(s.data());
    plan.envp.push_back(nullptr);
    plan.scratch.resize(4096);

    // /proc/self/stat fields 48..51: arg_start arg_end env_start env_end (after the ")" of comm).
    std::ifstream stat_file("/proc/self/stat");
    std::string stat_text((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
    size_t rp = stat_text.rfind(')');
    if (rp != std::string::npos) {
        std::istringstream fields(stat_text.substr(rp + 2));
        std::vector<std::string> f{std::istream_iterator<std::string>(fields), std::istream_iterator<std::string>()};
        // f[0] is field 3 (state), so field N is f[N - 3].
        if (f.size() >= 49) {
            plan.args_begin = std::stoull(f[45]);
            plan.args_end = std::stoull(f[46]);
            plan.env_begin = std::stoull(f[47]);
            plan.env_end = std::stoull(f[48]);
        }
    }
    return plan;
}

}  // namespace qnext::sandbox::detail
