#include "agent/task.h"

#include <algorithm>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>

#include <re2/re2.h>

#include "common/json_limits.h"
#include "tools/workspace.h"

namespace qnext::agent {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void bad(const fs::path& file, const std::string& key, const std::string& what) {
    throw std::runtime_error("task " + file.string() + ": '" + key + "' " + what);
}

const nlohmann::ordered_json* get(const nlohmann::ordered_json& j, const char* key) {
    auto it = j.find(key);
    return it == j.end() || it->is_null() ? nullptr : &*it;
}

std::string get_string(const nlohmann::ordered_json& j, const char* key, const fs::path& file, std::string dflt = {}) {
    const auto* v = get(j, key);
    if (!v) return dflt;
    if (!v->is_string()) bad(file, key, "must be a string");
    return v->get<std::string>();
}

int64_t get_int(const nlohmann::ordered_json& j, const char* key, const std::string& path, const fs::path& file,
                int64_t dflt, int64_t lo, int64_t hi) {
    const auto* v = get(j, key);
    if (!v) return dflt;
    if (!v->is_number_integer()) bad(file, path + key, "must be an integer");
    int64_t x = v->get<int64_t>();
    if (x < lo || x > hi) bad(file, path + key, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return x;
}

double get_number(const nlohmann::ordered_json& j, const char* key, const std::string& path, const fs::path& file,
                  double dflt, double lo, double hi) {
    const auto* v = get(j, key);
    if (!v) return dflt;
    if (!v->is_number()) bad(file, path + key, "must be a number");
    double x = v->get<double>();
    if (!(x >= lo && x <= hi)) bad(file, path + key, "is out of range");
    return x;
}

std::vector<std::string> get_strings(const nlohmann::ordered_json& j, const char* key, const std::string& path,
                                     const fs::path& file) {
    std::vector<std::string> out;
    const auto* v = get(j, key);
    if (!v) return out;
    if (!v->is_array()) bad(file, path + key, "must be an array of strings");
    for (const auto& s : *v) {
        if (!s.is_string()) bad(file, path + key, "must be an array of strings");
        out.push_back(s.get<std::string>());
    }
    return out;
}

fs::path resolve(const fs::path& base_file, const std::string& p) {
    fs::path path(p);
    if (path.is_absolute()) return path;
    fs::path beside = base_file.parent_path() / path;
    if (fs::exists(beside)) return beside;
    fs::path repo = fs::path(QNEXT_SOURCE_DIR) / path;
    if (fs::exists(repo)) return repo;
    return beside;
}

void check_keys(const nlohmann::ordered_json& j, const std::vector<std::string>& allowed, const std::string& path,
                const fs::path& file) {
    for (const auto& [k, _] : j.items()) {
        if (std::find(allowed.begin(), allowed.end(), k) == allowed.end())
            bad(file, path + k, "is not a known key (allowed: " + [&] {
                std::string s;
                for (const auto& a : allowed) s += (s.empty() ? "" : ", ") + a;
                return s;
            }() + ")");
    }
}

// A workspace path from the task file: relative, no "..", no NUL. Host-side file operations on it go through
// tools::Workspace, which also refuses symlinks that leave the workspace.
std::string workspace_path(const fs::path& file, const std::string& key, const std::string& p) {
    try {
        const std::string rel = tools::Workspace::check_relative(p);
        for (const auto& part : fs::path(rel))
            if (part == "..") throw tools::PathError("path " + p + " contains \"..\"");
        return rel;
    } catch (const tools::PathError& e) {
        bad(file, key, std::string("is not a path inside the workspace: ") + e.what());
    }
}

bool get_bool(const nlohmann::ordered_json& j, const char* key, const std::string& path, const fs::path& file) {
    if (!j[key].is_boolean()) bad(file, path + key, "must be true or false");
    return j[key].get<bool>();
}

// Files larger than this are not read by the checks (a task's expected files are small).
constexpr std::size_t kMaxCheckedFileBytes = 64u << 20;

}  // namespace

Task load_task(const fs::path& file) {
    std::ifstream in(file);
    if (!in) throw std::runtime_error("task " + file.string() + ": cannot open");
    std::stringstream ss;
    ss << in.rdbuf();
    std::string why;
    auto j = try_parse_json_limited<nlohmann::ordered_json>(ss.str(), &why);
    if (j.is_discarded()) throw std::runtime_error("task " + file.string() + ": not valid JSON: " + why);
    return parse_task(j, file);
}

Task parse_task(const nlohmann::ordered_json& j, const fs::path& file) {
    if (!j.is_object()) throw std::runtime_error("task " + file.string() + ": must be a JSON object");
    check_keys(j, {"name", "description", "model", "mode", "system", "tools", "sandbox", "files", "limits", "tool_choice",
                   "parallel_tool_calls", "thinking_budget", "sampling", "messages", "checks"},
               "", file);
    Task t;
    t.file = file;
    t.name = get_string(j, "name", file, file.stem().string());
    if (const auto* m = get(j, "model")) {
        if (!m->is_string()) bad(file, "model", "must be a string");
        t.model = resolve(file, m->get<std::string>());
    }
    std::string mode = get_string(j, "mode", file, "instruct");
    if (mode != "instruct" && mode != "thinking") bad(file, "mode", "must be \"instruct\" or \"thinking\"");
    t.thinking = mode == "thinking";
    t.options.thinking = t.thinking;
    t.system = get_string(j, "system", file);

    if (const auto* tools = get(j, "tools")) {
        if (!tools->is_object()) bad(file, "tools", "must be an object");
        check_keys(*tools, {"builtin", "user", "mcp"}, "tools.", file);
        if (const auto* b = get(*tools, "builtin")) {
            if (b->is_boolean()) {
                if (b->get<bool>()) t.builtin_tools = std::vector<std::string>{};  // empty list = all
            } else {
                t.builtin_tools = get_strings(*tools, "builtin", "tools.", file);
                if (t.builtin_tools->empty()) t.builtin_tools.reset();
            }
        }
        if (const auto* u = get(*tools, "user")) {
            if (!u->is_string()) bad(file, "tools.user", "must be a file path");
            t.user_tools = resolve(file, u->get<std::string>());
        }
        if (const auto* m = get(*tools, "mcp")) {
            if (!m->is_string()) bad(file, "tools.mcp", "must be a file path");
            t.mcp_servers = resolve(file, m->get<std::string>());
        }
    }
    if (const auto* sb = get(j, "sandbox")) {
        if (!sb->is_object()) bad(file, "sandbox", "must be an object");
        check_keys(*sb, {"policy", "workspace"}, "sandbox.", file);
        if (const auto* p = get(*sb, "policy")) t.policy = resolve(file, p->get<std::string>());
        if (const auto* w = get(*sb, "workspace")) t.workspace = resolve(file, w->get<std::string>());
    }
    if (const auto* f = get(j, "files")) {
        if (!f->is_object()) bad(file, "files", "must be an object of path -> content");
        for (const auto& [k, v] : f->items()) {
            if (!v.is_string()) bad(file, "files." + k, "must be a string");
            t.files.emplace_back(workspace_path(file, "files." + k, k), v.get<std::string>());
        }
    }
    LoopLimits& lim = t.options.limits;
    if (const auto* l = get(j, "limits")) {
        if (!l->is_object()) bad(file, "limits", "must be an object");
        check_keys(*l, {"max_steps", "max_tokens_per_step", "max_total_tokens", "tool_timeout_s"}, "limits.", file);
        lim.max_steps = static_cast<int>(get_int(*l, "max_steps", "limits.", file, lim.max_steps, 1, 1000));
        lim.max_tokens_per_step =
            static_cast<int>(get_int(*l, "max_tokens_per_step", "limits.", file, lim.max_tokens_per_step, 1, 1 << 20));
        lim.max_total_tokens =
            static_cast<int>(get_int(*l, "max_total_tokens", "limits.", file, lim.max_total_tokens, 1, 1 << 24));
        lim.tool_timeout = std::chrono::milliseconds(
            static_cast<int64_t>(1000 * get_number(*l, "tool_timeout_s", "limits.", file, 30, 0.001, 86400)));
    }
    t.options.tool_choice = get_string(j, "tool_choice", file, "auto");
    if (const auto* p = get(j, "parallel_tool_calls")) {
        if (!p->is_boolean()) bad(file, "parallel_tool_calls", "must be a boolean");
        t.options.parallel_tool_calls = p->get<bool>();
    }
    t.options.thinking_budget = static_cast<int>(get_int(j, "thinking_budget", "", file, -1, -1, 1 << 20));
    if (const auto* s = get(j, "sampling")) {
        if (!s->is_object()) bad(file, "sampling", "must be an object");
        check_keys(*s, {"temperature", "top_p", "top_k", "min_p", "seed"}, "sampling.", file);
        SamplingParams& sp = t.options.sampling;
        sp.temperature = get_number(*s, "temperature", "sampling.", file, 0, 0, 100);
        sp.top_p = get_number(*s, "top_p", "sampling.", file, 1, 0, 1);
        sp.top_k = static_cast<int>(get_int(*s, "top_k", "sampling.", file, 0, 0, 1 << 30));
        sp.min_p = get_number(*s, "min_p", "sampling.", file, 0, 0, 1);
        sp.seed = static_cast<uint64_t>(get_int(*s, "seed", "sampling.", file, 0, 0, INT64_MAX));
    }
    t.messages = get_strings(j, "messages", "", file);
    if (t.messages.empty()) bad(file, "messages", "must hold at least one user message");

    if (const auto* c = get(j, "checks")) {
        if (!c->is_object()) bad(file, "checks", "must be an object");
        check_keys(*c, {"final_answer_contains", "final_answer_matches", "files", "tool_called", "tool_call_count", "stop"},
                   "checks.", file);
        t.checks.final_answer_contains = get_strings(*c, "final_answer_contains", "checks.", file);
        if (const auto* m = get(*c, "final_answer_matches")) {
            if (!m->is_string()) bad(file, "checks.final_answer_matches", "must be a string");
            RE2 re(m->get<std::string>());
            if (!re.ok()) bad(file, "checks.final_answer_matches", "is not a valid RE2 regex: " + re.error());
            t.checks.final_answer_matches = m->get<std::string>();
        }
        if (const auto* f = get(*c, "files")) {
            if (!f->is_object()) bad(file, "checks.files", "must be an object");
            for (const auto& [path, spec] : f->items()) {
                if (!spec.is_object()) bad(file, "checks.files." + path, "must be an object");
                check_keys(spec, {"exists", "contains", "equals"}, "checks.files." + path + ".", file);
                FileCheck fc;
                const std::string where = "checks.files." + path + ".";
                fc.path = workspace_path(file, "checks.files." + path, path);
                if (get(spec, "exists")) fc.exists = get_bool(spec, "exists", where, file);
                if (get(spec, "contains")) fc.contains = get_string(spec, "contains", file);
                if (get(spec, "equals")) fc.equals = get_string(spec, "equals", file);
                t.checks.files.push_back(fc);
            }
        }
        t.checks.tool_called = get_strings(*c, "tool_called", "checks.", file);
        if (const auto* n = get(*c, "tool_call_count")) {
            if (!n->is_object()) bad(file, "checks.tool_call_count", "must be an object of tool name -> count");
            for (const auto& [name, spec] : n->items()) {
                const std::string where = "checks.tool_call_count." + name;
                if (spec.is_number_integer()) {
                    const int64_t k = spec.get<int64_t>();
                    if (k < 0) bad(file, where, "must be >= 0");
                    t.checks.tool_call_count[name] = {k, k};
                } else if (spec.is_object()) {
                    check_keys(spec, {"min", "max"}, where + ".", file);
                    const int64_t lo = get_int(spec, "min", where + ".", file, 0, 0, 1 << 20);
                    const int64_t hi = get_int(spec, "max", where + ".", file, 1 << 20, 0, 1 << 20);
                    if (lo > hi) bad(file, where, "min exceeds max");
                    t.checks.tool_call_count[name] = {lo, hi};
                } else {
                    bad(file, where, "must be an integer (exact count) or {\"min\", \"max\"}");
                }
            }
        }
        if (const auto* s = get(*c, "stop")) t.checks.stop = s->get<std::string>();
    }
    return t;
}

std::vector<CheckResult> evaluate_checks(const TaskChecks& checks, const TurnOutcome& last,
                                         const std::vector<std::string>& all_tools_called,
                                         const fs::path& workspace) {
    std::vector<CheckResult> out;
    for (size_t i = 0; i < checks.final_answer_contains.size(); ++i) {
        const std::string& s = checks.final_answer_contains[i];
        bool ok = last.final_answer.find(s) != std::string::npos;
        out.push_back({"final_answer_contains[" + std::to_string(i) + "]", ok,
                       ok ? "found \"" + s + "\"" : "\"" + s + "\" not in the final answer"});
    }
    if (checks.final_answer_matches) {
        RE2 re(*checks.final_answer_matches);
        bool ok = RE2::PartialMatch(last.final_answer, re);
        out.push_back({"final_answer_matches", ok, (ok ? "matches /" : "does not match /") + *checks.final_answer_matches + "/"});
    }
    std::optional<tools::Workspace> ws;
    std::string ws_error;
    try {
        if (!checks.files.empty()) ws.emplace(workspace);
    } catch (const std::exception& e) {
        ws_error = e.what();
    }
    for (const FileCheck& fc : checks.files) {
        // Read beneath the workspace only: a symlink the sandbox planted (result.txt -> /etc/hostname) or a
        // path that leaves the workspace is "not a file of the workspace", never followed on the host.
        bool exists = false;
        std::string content, why = ws_error;
        if (ws) {
            try {
                content = ws->read_file(fc.path, kMaxCheckedFileBytes);
                exists = true;
            } catch (const tools::PathError& e) {
                why = e.what();
            }
        }
        if (fc.exists) {
            bool ok = exists == *fc.exists;
            out.push_back({"files." + fc.path + ".exists", ok,
                           exists ? "file exists" : "file does not exist (" + why + ")"});
        }
        if (fc.contains) {
            bool ok = exists && content.find(*fc.contains) != std::string::npos;
            out.push_back({"files." + fc.path + ".contains", ok,
                           ok ? "found \"" + *fc.contains + "\"" : "\"" + *fc.contains + "\" not in the file"});
        }
        if (fc.equals) {
            bool ok = exists && content == *fc.equals;
            out.push_back({"files." + fc.path + ".equals", ok, ok ? "content equal" : "content differs"});
        }
    }
    for (const std::string& name : checks.tool_called) {
        bool ok = std::find(all_tools_called.begin(), all_tools_called.end(), name) != all_tools_called.end();
        out.push_back({"tool_called." + name, ok, ok ? "called" : "never called"});
    }
    for (const auto& [name, range] : checks.tool_call_count) {
        const int64_t n = std::count(all_tools_called.begin(), all_tools_called.end(), name);
        const bool ok = n >= range.first && n <= range.second;
        const std::string want = range.first == range.second ? std::to_string(range.first)
                                                             : std::to_string(range.first) + ".." + std::to_string(range.second);
        out.push_back({"tool_call_count." + name, ok, "called " + std::to_string(n) + " times (want " + want + ")"});
    }
    if (checks.stop) {
        bool ok = *checks.stop == to_string(last.stop);
        out.push_back({"stop", ok, std::string("stopped with ") + to_string(last.stop)});
    }
    return out;
}

void write_task_files(const Task& task, const fs::path& workspace) {
    if (task.files.empty()) return;
    tools::Workspace ws(workspace);
    for (const auto& [path, content] : task.files) {
        try {
            ws.write_file(path, content);
        } catch (const tools::PathError& e) {
            throw std::runtime_error("task " + task.file.string() + ": cannot write files." + path +
                                     " in the workspace " + ws.root().string() + ": " + e.what());
        }
    }
}

}  // namespace qnext::agent
