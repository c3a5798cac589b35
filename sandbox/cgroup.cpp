// One control group per sandbox (see cgroup.h).
#include "sandbox/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "sandbox/sandbox.h"

namespace qnext::sandbox::detail {
namespace {

std::string errstr(int e) { return std::strerror(e); }

std::optional<std::string> read_text(const std::string& path) {
    std::ifstream f(path);
    if (!f) return std::nullopt;
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// Writes text to an existing control file; returns 0 or errno.
int write_file(const std::string& path, const std::string& text) {
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    ssize_t n = ::write(fd, text.data(), text.size());
    int e = n == ssize_t(text.size()) ? 0 : (n < 0 ? errno : EIO);
    close(fd);
    return e;
}

std::uint64_t read_u64(const std::string& path) {
    auto t = read_text(path);
    return t ? std::strtoull(t->c_str(), nullptr, 10) : 0;
}

// "key value" lines (memory.events, pids.events, cpu.stat, memory.oom_control).
std::uint64_t read_key(const std::string& path, const std::string& key) {
    auto t = read_text(path);
    if (!t) return 0;
    std::istringstream in(*t);
    std::string k;
    std::uint64_t v;
    while (in >> k >> v)
        if (k == key) return v;
    return 0;
}

bool has_word(const std::string& list, const std::string& word) {
    std::istringstream in(list);
    std::string w;
    while (in >> w)
        if (w == word) return true;
    return false;
}

struct Hierarchies {
    std::string v2;                          // qnext's group in the unified hierarchy ("" if none)
    bool v2_is_root = false;
    std::map<std::string, std::string> v1;   // controller -> qnext's group directory
};

// qnext's own groups, from /proc/self/mountinfo and /proc/self/cgroup.
Hierarchies find_hierarchies() {
    struct Mount {
        std::string root, point;
    };
    std::optional<Mount> unified;
    std::map<std::string, Mount> v1;
    std::ifstream mi("/proc/self/mountinfo");
    for (std::string line; std::getline(mi, line);) {
        std::istringstream in(line);
        std::string id, parent, dev, root, point, opts, f;
        in >> id >> parent >> dev >> root >> point >> opts;
        while (in >> f && f != "-") {
        }
        std::string type, source, super;
        in >> type >> source >> super;
        if (type == "cgroup2") {
            if (!unified) unified = Mount{root, point};
        } else if (type == "cgroup") {
            std::istringstream so(super);
            for (std::string c; std::getline(so, c, ',');)
                if (c == "memory" || c == "pids" || c == "cpuacct") v1.emplace(c, Mount{root, point});
        }
    }
    auto join = [](const Mount& m, const std::string& path) -> std::string {
        if (m.root == "/") return m.point + (path == "/" ? "" : path);
        if (path.starts_with(m.root)) return m.point + path.substr(m.root.size());
        return "";   // the group is outside what this mount shows
    };
    Hierarchies h;
    std::ifstream cg("/proc/self/cgroup");
    for (std::string line; std::getline(cg, line);) {
        size_t a = line.find(':'), b = line.find(':', a + 1);
        if (a == std::string::npos || b == std::string::npos) continue;
        std::string ctrls = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
        if (line.compare(0, a, "0") == 0 && ctrls.empty()) {
            if (unified) {
                h.v2 = join(*unified, path);
                h.v2_is_root = path == "/";
            }
            continue;
        }
        std::istringstream cs(ctrls);
        for (std::string c; std::getline(cs, c, ',');)
            if (v1.count(c)) h.v1[c] = join(v1[c], path);
    }
    return h;
}

struct Base {
    CgroupSupport support;
    std::string v2;                          // parent directory of the sandbox groups (v2)
    std::map<std::string, std::string> v1;   // controller -> parent directory (v1)
};

std::string unique_name() {
    static std::atomic<unsigned> n{0};
    return "qnext-" + std::to_string(getpid()) + "-" + std::to_string(n++);
}

// cgroup v2: the sandbox groups need memory and pids enabled in the parent's subtree_control, and a group
// with processes cannot enable controllers for its children ("no internal processes"): unless qnext is in
// the root group, it moves itself into a leaf <own>/qnext-<pid> first. That works when qnext has its group
// to itself (systemd-run --user --scope -p Delegate=yes qnext ...); otherwise it is undone.
std::string setup_v2(const std::string& own, bool own_is_root) {
    auto controllers = read_text(own + "/cgroup.controllers");
    if (!controllers) return "cannot read " + own + "/cgroup.controllers";
    if (!has_word(*controllers, "memory") || !has_word(*controllers, "pids"))
        return "the unified hierarchy (" + own + ") has no memory/pids controllers";
    auto subtree = read_text(own + "/cgroup.subtree_control").value_or("");
    if (has_word(subtree, "memory") && has_word(subtree, "pids")) return "";
    if (!own_is_root) {
        const std::string leaf = own + "/qnext-" + std::to_string(getpid());
        if (mkdir(leaf.c_str(), 0755) < 0 && errno != EEXIST)
            return "cannot create " + leaf + ": " + errstr(errno) + " (the group is not delegated to this user)";
        if (int e = write_file(leaf + "/cgroup.procs", std::to_string(getpid()))) {
            rmdir(leaf.c_str());
            return "cannot move qnext into " + leaf + ": " + errstr(e);
        }
        if (int e = write_file(own + "/cgroup.subtree_control", "+memory +pids")) {
            write_file(own + "/cgroup.procs", std::to_string(getpid()));
            rmdir(leaf.c_str());
            return "cannot enable memory and pids for the groups below " + own + ": " + errstr(e) +
                   " (other processes share qnext's group; run qnext in its own delegated group, e.g. "
                   "systemd-run --user --scope -p Delegate=yes qnext ...)";
        }
        return "";
    }
    if (int e = write_file(own + "/cgroup.subtree_control", "+memory +pids"))
        return "cannot enable memory and pids in " + own + ": " + errstr(e);
    return "";
}

// A scratch group proves that qnext may create groups there.
std::string try_mkdir(const std::string& parent) {
    const std::string probe = parent + "/" + unique_name();
    if (mkdir(probe.c_str(), 0755) < 0) return "cannot create a group in " + parent + ": " + errstr(errno);
    rmdir(probe.c_str());
    return "";
}

// Groups left by a qnext that was killed (SIGKILL gives it no chance to remove them): empty once their
// processes are gone, so rmdir removes exactly those.
void remove_stale(const std::string& parent) {
    DIR* d = opendir(parent.c_str());
    if (!d) return;
    while (struct dirent* e = readdir(d)) {
        unsigned long pid = 0;
        if (std::sscanf(e->d_name, "qnext-%lu", &pid) != 1 || pid == 0 || pid == unsigned(getpid())) continue;
        if (::kill(pid_t(pid), 0) < 0 && errno == ESRCH) rmdir((parent + "/" + e->d_name).c_str());
    }
    closedir(d);
}

Base probe() {
    Base b;
    Hierarchies h = find_hierarchies();
    std::string why2, why1;
    if (!h.v2.empty()) {
        why2 = setup_v2(h.v2, h.v2_is_root);
        if (why2.empty()) why2 = try_mkdir(h.v2);
        if (why2.empty()) {
            b.support.backend = "cgroup2";
            b.v2 = h.v2;
            remove_stale(b.v2);
            return b;
        }
    } else {
        why2 = "no cgroup2 file system mounted";
    }
    if (h.v1.count("memory") && h.v1.count("pids") && !h.v1["memory"].empty() && !h.v1["pids"].empty()) {
        why1 = try_mkdir(h.v1["memory"]);
        if (why1.empty()) why1 = try_mkdir(h.v1["pids"]);
        if (why1.empty()) {
            b.support.backend = "cgroup1";
            b.v1 = h.v1;
            if (!b.v1.count("cpuacct") || b.v1["cpuacct"].empty() || !try_mkdir(b.v1["cpuacct"]).empty())
                b.v1.erase("cpuacct");
            for (const auto& [c, dir] : b.v1) remove_stale(dir);
            return b;
        }
    } else {
        why1 = "no cgroup v1 memory and pids hierarchies";
    }
    b.support.reason = "cgroup v2: " + why2 + "; cgroup v1: " + why1;
    return b;
}

const Base& base() {
    static const Base b = probe();
    return b;
}

bool disabled_by_env() {
    const char* v = std::getenv("QNEXT_SANDBOX_CGROUPS");
    return v && (std::strcmp(v, "0") == 0 || std::strcmp(v, "off") == 0);
}

}  // namespace

const CgroupSupport& cgroup_support() {
    static const CgroupSupport off{"", "disabled by QNEXT_SANDBOX_CGROUPS=off"};
    if (disabled_by_env()) return off;
    return base().support;
}

std::unique_ptr<Cgroup> Cgroup::create(std::uint64_t memory_bytes, std::uint32_t max_pids, std::string* why_not) {
    if (cgroup_support().backend.empty()) {
        *why_not = cgroup_support().reason;
        return nullptr;
    }
    const Base& b = base();
    std::unique_ptr<Cgroup> cg(new Cgroup);
    cg->backend_ = b.support.backend;
    const std::string name = unique_name();
    // "" when made; else why not (a group qnext may not create, e.g. after it dropped privileges: no cgroups)
    auto make = [&](const std::string& parent, std::string& dir) -> std::string {
        dir = parent + "/" + name;
        if (mkdir(dir.c_str(), 0755) < 0) {
            if (errno == EACCES || errno == EPERM || errno == EROFS)
                return b.support.backend + ": cannot create a group in " + parent + ": " + errstr(errno);
            throw SandboxError("sandbox: cannot create the control group " + dir + ": " + errstr(errno));
        }
        cg->dirs_.push_back(dir);
        return "";
    };
    auto set = [&](const std::string& file, const std::string& value) {
        if (int e = write_file(file, value))
            throw SandboxError("sandbox: cannot set " + file + " to " + value + ": " + errstr(e));
    };
    if (cg->backend_ == "cgroup2") {
        if ((*why_not = make(b.v2, cg->memory_dir_)) != "") return nullptr;
        cg->pids_dir_ = cg->cpu_dir_ = cg->memory_dir_;
        const std::string& dir = cg->memory_dir_;
        if (memory_bytes) {
            set(dir + "/memory.max", std::to_string(memory_bytes));
            if (access((dir + "/memory.swap.max").c_str(), F_OK) == 0) set(dir + "/memory.swap.max", "0");
        }
        if (max_pids) set(dir + "/pids.max", std::to_string(max_pids));
    } else {
        if ((*why_not = make(b.v1.at("memory"), cg->memory_dir_)) != "") return nullptr;
        if ((*why_not = make(b.v1.at("pids"), cg->pids_dir_)) != "") return nullptr;
        if (b.v1.count("cpuacct") && make(b.v1.at("cpuacct"), cg->cpu_dir_) != "") cg->cpu_dir_.clear();
        if (memory_bytes) {
            set(cg->memory_dir_ + "/memory.limit_in_bytes", std::to_string(memory_bytes));
            // memory+swap: the same limit, so the group cannot spill into swap (absent without swap accounting)
            if (access((cg->memory_dir_ + "/memory.memsw.limit_in_bytes").c_str(), F_OK) == 0)
                set(cg->memory_dir_ + "/memory.memsw.limit_in_bytes", std::to_string(memory_bytes));
        }
        if (max_pids) set(cg->pids_dir_ + "/pids.max", std::to_string(max_pids));
    }
    for (const auto& d : cg->dirs_) {
        int fd = open((d + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
        if (fd < 0) throw SandboxError("sandbox: cannot open " + d + "/cgroup.procs: " + errstr(errno));
        cg->join_fds_.push_back(fd);
    }
    return cg;
}

void Cgroup::close_join_fds() {
    for (int fd : join_fds_) close(fd);
    join_fds_.clear();
}

double Cgroup::cpu_ms() const {
    if (cpu_dir_.empty()) return 0;
    if (backend_ == "cgroup2") return double(read_key(cpu_dir_ + "/cpu.stat", "usage_usec")) / 1e3;
    return double(read_u64(cpu_dir_ + "/cpuacct.usage")) / 1e6;
}

Cgroup::Stats Cgroup::stats() const {
    Stats s;
    s.cpu_ms = cpu_ms();
    if (backend_ == "cgroup2") {
        s.oom_kills = read_key(memory_dir_ + "/memory.events", "oom_kill");
        s.memory_max_hits = read_key(memory_dir_ + "/memory.events", "max");
        s.memory_peak = read_u64(memory_dir_ + "/memory.peak");
    } else {
        s.oom_kills = read_key(memory_dir_ + "/memory.oom_control", "oom_kill");
        s.memory_max_hits = read_u64(memory_dir_ + "/memory.failcnt");
        s.memory_peak = read_u64(memory_dir_ + "/memory.max_usage_in_bytes");
    }
    s.pids_max_hits = read_key(pids_dir_ + "/pids.events", "max");
    return s;
}

void Cgroup::kill_all() {
    if (backend_ == "cgroup2" && write_file(dirs_[0] + "/cgroup.kill", "1") == 0) return;
    for (const auto& d : dirs_) {
        auto procs = read_text(d + "/cgroup.procs");
        if (!procs) continue;
        std::istringstream in(*procs);
        for (long pid; in >> pid;)
            if (pid > 0) ::kill(pid_t(pid), SIGKILL);
    }
}

Cgroup::~Cgroup() {
    close_join_fds();
    for (const auto& d : dirs_) {
        // Processes killed with the sandbox leave their group a moment later.
        for (int i = 0; i < 200 && rmdir(d.c_str()) < 0 && errno == EBUSY; ++i) {
            kill_all();
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    }
}

}  // namespace qnext::sandbox::detail
