// Policy <-> JSON, the built-in default policy, RunResult JSON.
#include <fstream>
#include <set>

#include "sandbox/sandbox.h"

namespace qnext::sandbox {
namespace {

using nlohmann::json;

constexpr std::uint64_t kMiB = 1ull << 20;
constexpr std::uint64_t kKiB = 1ull << 10;

[[noreturn]] void bad(const std::string& where, const std::string& msg) {
    throw SandboxError("sandbox policy: " + where + ": " + msg);
}

void check_keys(const json& j, const std::set<std::string>& allowed, const std::string& where) {
    if (!j.is_object()) bad(where, "expected a JSON object");
    for (const auto& [k, v] : j.items())
        if (!allowed.count(k)) bad(where, "unknown key \"" + k + "\"");
}

double get_number(const json& j, const char* key, double lo, double hi, const std::string& where) {
    const json& v = j.at(key);
    if (!v.is_number()) bad(where + "." + key, "expected a number");
    double d = v.get<double>();
    if (!(d >= lo && d <= hi))
        bad(where + "." + key, "out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return d;
}

std::vector<std::string> get_paths(const json& j, const char* key, const std::string& where) {
    const json& v = j.at(key);
    if (!v.is_array()) bad(where + "." + key, "expected an array of strings");
    std::vector<std::string> out;
    for (const auto& e : v) {
        if (!e.is_string()) bad(where + "." + key, "expected an array of strings");
        out.push_back(e.get<std::string>());
    }
    return out;
}

void check_abs(const std::string& p, const std::string& where) {
    if (p.empty() || p[0] != '/' || p.find("/../") != std::string::npos || p.ends_with("/..") ||
        p.find('\0') != std::string::npos)
        bad(where, "\"" + p + "\" is not a clean absolute path");
}

Limits limits_from_json(const json& j, Limits l) {
    const std::string w = "limits";
    check_keys(j, {"timeout_s", "cpu_s", "memory_mb", "max_processes", "max_file_mb", "max_open_files",
                   "tmp_mb", "disk_mb", "inodes", "output_kib", "output_hard_mb"}, w);
    if (j.contains("timeout_s")) l.timeout_s = get_number(j, "timeout_s", 0, 86400 * 7, w);
    if (j.contains("cpu_s")) l.cpu_s = get_number(j, "cpu_s", 0, 86400 * 7, w);
    if (j.contains("memory_mb")) l.memory_bytes = std::uint64_t(get_number(j, "memory_mb", 0, 1 << 24, w) * kMiB);
    if (j.contains("max_processes")) l.max_processes = std::uint32_t(get_number(j, "max_processes", 1, 1 << 20, w));
    if (j.contains("max_file_mb")) l.max_file_bytes = std::uint64_t(get_number(j, "max_file_mb", 0, 1 << 24, w) * kMiB);
    if (j.contains("max_open_files")) l.max_open_files = std::uint32_t(get_number(j, "max_open_files", 16, 1 << 20, w));
    if (j.contains("tmp_mb")) l.tmp_bytes = std::uint64_t(get_number(j, "tmp_mb", 1, 1 << 20, w) * kMiB);
    if (j.contains("disk_mb")) l.disk_bytes = std::uint64_t(get_number(j, "disk_mb", 0, 1 << 24, w) * kMiB);
    if (j.contains("inodes")) l.max_inodes = std::uint64_t(get_number(j, "inodes", 16, 1u << 31, w));
    if (j.contains("output_kib")) l.output_bytes = std::uint64_t(get_number(j, "output_kib", 1, 1 << 20, w) * kKiB);
    if (j.contains("output_hard_mb"))
        l.output_hard_bytes = std::uint64_t(get_number(j, "output_hard_mb", 1, 1 << 16, w) * kMiB);
    return l;
}

json limits_to_json(const Limits& l) {
    return json{{"timeout_s", l.timeout_s},
                {"cpu_s", l.cpu_s},
                {"memory_mb", double(l.memory_bytes) / kMiB},
                {"max_processes", l.max_processes},
                {"max_file_mb", double(l.max_file_bytes) / kMiB},
                {"max_open_files", l.max_open_files},
                {"tmp_mb", double(l.tmp_bytes) / kMiB},
                {"disk_mb", double(l.disk_bytes) / kMiB},
                {"inodes", l.max_inodes},
                {"output_kib", double(l.output_bytes) / kKiB},
                {"output_hard_mb", double(l.output_hard_bytes) / kMiB}};
}

}  // namespace

Policy default_policy() {
    Policy p;
    p.ro_paths = {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"};
    p.etc_files = {"/etc/alternatives",  "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
                   "/etc/localtime",     "/etc/nsswitch.conf", "/etc/bash.bashrc", "/etc/profile",
                   "/etc/inputrc",       "/etc/mime.types",  "/etc/python3",    "/etc/python3.11",
                   "/etc/ssl/certs",     "/etc/ssl/openssl.cnf", "/etc/protocols", "/etc/services",
                   "/etc/debian_version", "/etc/os-release"};
    p.env_pass = {"LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM"};
    p.env_set = {{"PATH", "/usr/local/bin:/usr/bin:/bin"},
                 {"HOME", "/tmp"},
                 {"TMPDIR", "/tmp"},
                 {"LANG", "C.UTF-8"},
                 {"SHELL", "/bin/sh"},
                 {"USER", "sandbox"},
                 {"LOGNAME", "sandbox"}};
    return p;
}

Policy Policy::from_json(const json& j) {
    Policy p = default_policy();
    check_keys(j, {"name", "mode", "limits", "allow_network", "ro_paths", "etc_files", "env_pass", "env_set",
                   "workspace_mount", "hostname", "uid", "gid", "root_host_uid", "root_host_gid", "$comment"},
               "policy");
    if (j.contains("name")) {
        if (!j["name"].is_string()) bad("name", "expected a string");
        p.name = j["name"].get<std::string>();
    }
    if (j.contains("mode")) {
        const json& m = j["mode"];
        if (m == "isolated") p.mode = Mode::Isolated;
        else if (m == "none") p.mode = Mode::None;
        else bad("mode", "expected \"isolated\" or \"none\"");
    }
    if (j.contains("limits")) p.limits = limits_from_json(j["limits"], p.limits);
    if (j.contains("allow_network")) {
        if (!j["allow_network"].is_boolean()) bad("allow_network", "expected true or false");
        p.allow_network = j["allow_network"].get<bool>();
    }
    if (j.contains("ro_paths")) p.ro_paths = get_paths(j, "ro_paths", "policy");
    if (j.contains("etc_files")) p.etc_files = get_paths(j, "etc_files", "policy");
    for (const auto& s : p.ro_paths) check_abs(s, "ro_paths");
    for (const auto& s : p.etc_files) {
        check_abs(s, "etc_files");
        if (!s.starts_with("/etc/")) bad("etc_files", "\"" + s + "\" is not under /etc/");
    }
    if (j.contains("env_pass")) p.env_pass = get_paths(j, "env_pass", "policy");
    if (j.contains("env_set")) {
        const json& e = j["env_set"];
        if (!e.is_object()) bad("env_set", "expected an object of strings");
        p.env_set.clear();
        for (const auto& [k, v] : e.items()) {
            if (!v.is_string()) bad("env_set." + k, "expected a string");
            p.env_set[k] = v.get<std::string>();
        }
    }
    for (const auto& [k, v] : p.env_set)
        if (k.empty() || k.find('=') != std::string::npos) bad("env_set", "bad variable name \"" + k + "\"");
    if (j.contains("workspace_mount")) {
        if (!j["workspace_mount"].is_string()) bad("workspace_mount", "expected a string");
        p.workspace_mount = j["workspace_mount"].get<std::string>();
    }
    check_abs(p.workspace_mount, "workspace_mount");
    if (p.workspace_mount == "/" || p.workspace_mount.find('/', 1) != std::string::npos)
        bad("workspace_mount", "must be a top-level directory such as /workspace");
    if (j.contains("hostname")) {
        if (!j["hostname"].is_string() || j["hostname"].get<std::string>().size() > 63)
            bad("hostname", "expected a string of at most 63 characters");
        p.hostname = j["hostname"].get<std::string>();
    }
    auto id = [&](const char* key, std::uint32_t& out) {
        if (j.contains(key)) out = std::uint32_t(get_number(j, key, 1, 4294967294.0, "policy"));
    };
    id("uid", p.uid);
    id("gid", p.gid);
    id("root_host_uid", p.root_host_uid);
    id("root_host_gid", p.root_host_gid);
    // Root-owned sandboxes must map to an unprivileged host id: host uid 0 would bypass
    // RLIMIT_NPROC and own every root file.
    if (p.root_host_uid == 0 || p.root_host_gid == 0) bad("root_host_uid/gid", "must not be 0");
    return p;
}

json Policy::to_json() const {
    return json{{"name", name},
                {"mode", mode == Mode::Isolated ? "isolated" : "none"},
                {"limits", limits_to_json(limits)},
                {"allow_network", allow_network},
                {"ro_paths", ro_paths},
                {"etc_files", etc_files},
                {"env_pass", env_pass},
                {"env_set", env_set},
                {"workspace_mount", workspace_mount},
                {"hostname", hostname},
                {"uid", uid},
                {"gid", gid},
                {"root_host_uid", root_host_uid},
                {"root_host_gid", root_host_gid}};
}

Policy load_policy(const std::filesystem::path& file) {
    std::ifstream in(file);
    if (!in) throw SandboxError("sandbox policy: cannot open " + file.string());
    json j;
    try {
        j = json::parse(in);
    } catch (const json::parse_error& e) {
        throw SandboxError("sandbox policy: " + file.string() + ": invalid JSON: " + e.what());
    }
    try {
        return Policy::from_json(j);
    } catch (const SandboxError& e) {
        throw SandboxError(std::string(e.what()) + " (in " + file.string() + ")");
    }
}

const char* to_string(LimitHit l) {
    switch (l) {
        case LimitHit::None: return "none";
        case LimitHit::Memory: return "memory";
        case LimitHit::Cpu: return "cpu";
        case LimitHit::Pids: return "pids";
        case LimitHit::Fsize: return "fsize";
        case LimitHit::Output: return "output";
        case LimitHit::Disk: return "disk";
    }
    return "none";
}

namespace {
// Text for JSON: invalid UTF-8 bytes become U+FFFD (captured output is arbitrary bytes).
json as_text(const std::string& s) {
    return json::parse(json(s).dump(-1, ' ', false, json::error_handler_t::replace));
}
}  // namespace

json RunResult::to_json() const {
    json j;
    j["exit_code"] = exit_code ? json(*exit_code) : json(nullptr);
    j["signal"] = signal ? json(*signal) : json(nullptr);
    j["timed_out"] = timed_out;
    j["limit"] = limit == LimitHit::None ? json(nullptr) : json(to_string(limit));
    j["truncated"] = truncated;
    j["stdout"] = as_text(stdout_data);
    j["stderr"] = as_text(stderr_data);
    j["wall_ms"] = wall_ms;
    j["cpu_ms"] = cpu_ms;
    j["enforcement"] = enforcement.to_json();
    j["memory_peak_bytes"] = memory_peak_bytes ? json(memory_peak_bytes) : json(nullptr);
    if (!neutralized.empty()) {
        j["neutralized"] = json::array();
        for (const auto& p : neutralized) j["neutralized"].push_back(as_text(p));
    }
    if (!not_copied_back.empty()) {
        j["not_copied_back"] = json::array();
        for (const auto& p : not_copied_back) j["not_copied_back"].push_back(as_text(p));
    }
    return j;
}

json Enforcement::to_json() const {
    json t{{"backend", tree}};
    if (tree == "none") {
        t["reason"] = tree_reason;
    } else {
        t["memory_bytes"] = tree_memory_bytes ? json(tree_memory_bytes) : json(nullptr);
        t["pids"] = tree_pids ? json(tree_pids) : json(nullptr);
        t["cpu_s"] = tree_cpu_s > 0 ? json(tree_cpu_s) : json(nullptr);
    }
    auto or_null = [](auto v) { return v ? json(v) : json(nullptr); };
    json p{{"memory_bytes", or_null(process_memory_bytes)}, {"cpu_s", process_cpu_s > 0 ? json(process_cpu_s) : json(nullptr)},
           {"pids", or_null(process_pids)}, {"file_bytes", or_null(file_bytes)}, {"open_files", open_files}};
    json w{{"kind", workspace}};
    if (workspace == "tmpfs") {
        w["disk_bytes"] = disk_bytes;
        w["inodes"] = inodes;
    }
    return json{{"tree", t}, {"process", p}, {"workspace", w}, {"tmp_bytes", or_null(tmp_bytes)}};
}

}  // namespace qnext::sandbox
