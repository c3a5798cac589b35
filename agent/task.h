// Scripted agent tasks (`qnext run TASK.json`): the task file format, and the checks on the outcome.
//
// {
//   "name": "square-and-save",                  // optional; defaults to the file name
//   "model": "models/demo",                      // optional; --model overrides; default: the demo model
//   "mode": "instruct" | "thinking",             // default instruct
//   "system": "You are ...",                     // optional system prompt
//   "tools": {"builtin": ["python", "write_file"] | true, "user": "FILE", "mcp": "FILE"},
//   "sandbox": {"policy": "configs/policies/default.json", "workspace": "DIR"},   // default: temp workspace
//   "files": {"input.txt": "text"},              // optional files created in the workspace first
//   "limits": {"max_steps": 8, "max_tokens_per_step": 512, "max_total_tokens": 4096, "tool_timeout_s": 30},
//   "tool_choice": "auto", "parallel_tool_calls": true, "thinking_budget": -1,
//   "sampling": {"temperature": 0, "top_p": 1, "top_k": 0, "seed": 0},
//   "messages": ["first user message", "second user message"],
//   "checks": {
//     "final_answer_contains": ["391"],          // all substrings must occur in the last final answer
//     "final_answer_matches": "^\\d+$",          // RE2, partial match
//     "files": {"out.txt": {"exists": true, "contains": "391", "equals": "391\n"}},
//     "tool_called": ["python"],                 // each must have been called at least once
//     "stop": "final_answer"                     // expected stop reason of the last turn
//   }
// }
// Relative paths in a task file resolve against the task file's directory, then the repository root.
#pragma once
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/agent_loop.h"

namespace qnext::agent {

struct FileCheck {
    std::string path;
    std::optional<bool> exists;
    std::optional<std::string> contains;
    std::optional<std::string> equals;
};

struct TaskChecks {
    std::vector<std::string> final_answer_contains;
    std::optional<std::string> final_answer_matches;
    std::vector<FileCheck> files;
    std::vector<std::string> tool_called;
    // tool_call_count: {"python": 1} (exactly) or {"python": {"min": 1, "max": 2}}: calls over the whole task
    std::map<std::string, std::pair<int64_t, int64_t>> tool_call_count;
    std::optional<std::string> stop;
    bool empty() const {
        return final_answer_contains.empty() && !final_answer_matches && files.empty() && tool_called.empty() &&
               tool_call_count.empty() && !stop;
    }
};

struct Task {
    std::filesystem::path file;
    std::string name;
    std::optional<std::filesystem::path> model;
    bool thinking = false;
    std::string system;
    std::optional<std::vector<std::string>> builtin_tools;  // nullopt = none; empty = none; names
    std::optional<std::filesystem::path> user_tools, mcp_servers;
    std::optional<std::filesystem::path> policy, workspace;
    std::vector<std::pair<std::string, std::string>> files;
    LoopOptions options;
    std::vector<std::string> messages;
    TaskChecks checks;
};

// Loads and validates a task file; errors name the file and the offending key.
Task load_task(const std::filesystem::path& file);
Task parse_task(const nlohmann::ordered_json& j, const std::filesystem::path& file);

struct CheckResult {
    std::string check;  // e.g. "final_answer_contains[0]"
    bool passed = false;
    std::string detail;
};

// Evaluates the checks against the last turn's outcome and the workspace.
// Creates the task's `files` in the workspace (missing parent directories too). Every write resolves beneath
// the workspace (tools::Workspace): a symlink left there by an earlier sandboxed step is replaced, never
// written through. Throws std::runtime_error naming the file.
void write_task_files(const Task& task, const std::filesystem::path& workspace);

std::vector<CheckResult> evaluate_checks(const TaskChecks& checks, const TurnOutcome& last,
                                         const std::vector<std::string>& all_tools_called,
                                         const std::filesystem::path& workspace);

}  // namespace qnext::agent
