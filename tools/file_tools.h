// The in-process built-in file tools: read_file, write_file, edit_file, list_dir, grep. They run on the
// registry's worker thread, confined to the workspace (tools/workspace.h), and never throw: every failure is
// an "error: ..." result.
#pragma once
#include <atomic>
#include <string>

#include <nlohmann/json.hpp>

#include "tools/registry.h"
#include "tools/workspace.h"

namespace qnext::tools {

struct FileToolLimits {
    std::size_t max_file_bytes = 8u << 20;  // read_file / edit_file / grep skip or refuse larger files
    std::size_t max_list_entries = 1000;    // list_dir
    std::size_t max_grep_matches = 200;     // grep stops after this many matching lines
    std::size_t max_grep_files = 20000;     // grep visits at most this many files
    std::size_t max_grep_line = 400;        // bytes of a matching line shown
};

bool is_file_tool(const std::string& name);
// Runs one file tool; `stop` is polled by long-running work (grep) and turns into a cancelled result.
// Arguments are assumed to satisfy the tool's schema (checked by the registry).
ToolResult run_file_tool(const std::string& name, const Workspace& ws, const nlohmann::ordered_json& args,
                         const std::atomic<bool>& stop, const FileToolLimits& limits = {});

}  // namespace qnext::tools
