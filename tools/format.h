// THE tool-result text formats (what the model reads inside <tool_response>). They are byte-identical to
// tests/reference/demo_model/demo_tools.py, which produced the demo model's training data:
//   python / shell / user tools: stdout with trailing newlines removed; then, if stderr is non-empty, "stderr:"
//       and the stderr text (trailing newlines removed); then "exit code: N" if it is non-zero; parts joined by
//       "\n"; nothing at all -> "(no output)". Beyond the demo format: "killed by signal N (SIGNAME)",
//       "error: timed out after S s", "error: LIMIT limit exceeded" and "[output truncated]" lines.
//   write_file: "wrote N bytes to PATH"      read_file: the file's text, unchanged (or the requested lines)
//   list_dir: sorted entries, one per line, directories with a trailing "/", symlinks as "name -> target";
//       "(empty)" if none
//   edit_file: "replaced 1 occurrence in PATH"
//   grep: "PATH:LINE:TEXT" per matching line (sorted by path, then line); "(no matches)" if none
//   any failure: "error: MESSAGE"
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace qnext::tools {

// What a finished process produced, independent of how it was run.
struct ProcessOutcome {
    std::string out;                 // captured stdout
    std::string err;                 // captured stderr
    std::optional<int> exit_code;    // set when it exited
    std::optional<int> signal;       // set when a signal ended it
    bool timed_out = false;
    double timeout_s = 0;            // the timeout that fired (for the message)
    std::string limit;               // "" or the limit hit: memory, cpu, pids, fsize, output
    bool truncated = false;          // stdout/stderr were cut by the capture cap
};

std::string format_process_result(const ProcessOutcome& p);
// "error: " + message (the message's trailing newlines removed).
std::string error_text(std::string_view message);
// Replaces invalid UTF-8 with U+FFFD so the text can go into JSON and the tokenizer.
std::string sanitize_utf8(std::string_view s);
// Keeps at most max_bytes: the head and tail of s with "\n[... N bytes omitted ...]\n" between them, cut at
// UTF-8 character boundaries. Returns s unchanged when it fits.
std::string cap_text(std::string s, std::size_t max_bytes);

}  // namespace qnext::tools
