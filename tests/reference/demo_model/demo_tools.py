"""Real execution of the built-in tools for the demo-model data, and THE tool-result text format.

This module is the single place that defines how a tool result reads inside <tool_response>. The C++ tools
(tools/) must produce byte-identical text, otherwise the demo model sees inputs it was never trained on:

  python / shell : stdout with trailing newlines removed; then, if stderr is non-empty, a line "stderr:" and
                   the stderr text (trailing newlines removed); then, if the exit code is non-zero,
                   "exit code: N". Parts are joined by "\n". Nothing at all -> "(no output)".
                   python runs as `python3 -c CODE` with the workspace as working directory.
  write_file     : "wrote N bytes to PATH"   (N = UTF-8 byte length of content, PATH as given)
  read_file      : the file's text, unchanged
  list_dir       : entries sorted by name, one per line, directories with a trailing "/"; "(empty)" if none
  any tool error : "error: MESSAGE"  (e.g. "error: no such file: notes.txt")
"""
import os
import subprocess

PYTHON = "/usr/bin/python3"  # plain interpreter, like the sandbox's python3
TIMEOUT_S = 10


def format_process_result(stdout: str, stderr: str, exit_code: int) -> str:
    parts = []
    if stdout.rstrip("\n"):
        parts.append(stdout.rstrip("\n"))
    if stderr.rstrip("\n"):
        parts.append("stderr:\n" + stderr.rstrip("\n"))
    if exit_code != 0:
        parts.append(f"exit code: {exit_code}")
    return "\n".join(parts) if parts else "(no output)"


def _inside(workspace: str, path: str) -> str:
    full = os.path.realpath(os.path.join(workspace, path))
    root = os.path.realpath(workspace)
    if full != root and not full.startswith(root + os.sep):
        raise ValueError(f"path escapes the workspace: {path}")
    return full


def run_tool(workspace: str, name: str, args: dict) -> str:
    """Executes one call for real in `workspace` and returns the <tool_response> text."""
    try:
        if name == "python":
            p = subprocess.run([PYTHON, "-c", args["code"]], cwd=workspace, capture_output=True, text=True,
                               timeout=TIMEOUT_S, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
            return format_process_result(p.stdout, p.stderr, p.returncode)
        if name == "shell":
            p = subprocess.run(["/bin/bash", "-c", args["command"]], cwd=workspace, capture_output=True, text=True,
                               timeout=TIMEOUT_S, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
            return format_process_result(p.stdout, p.stderr, p.returncode)
        if name == "write_file":
            full = _inside(workspace, args["path"])
            os.makedirs(os.path.dirname(full), exist_ok=True)
            data = args["content"].encode("utf-8")
            with open(full, "wb") as f:
                f.write(data)
            return f"wrote {len(data)} bytes to {args['path']}"
        if name == "read_file":
            full = _inside(workspace, args["path"])
            if not os.path.isfile(full):
                return f"error: no such file: {args['path']}"
            with open(full, encoding="utf-8") as f:
                text = f.read()
            if "start_line" in args or "end_line" in args:
                lines = text.splitlines(keepends=True)
                lo = args.get("start_line", 1)
                hi = args.get("end_line", len(lines))
                text = "".join(lines[lo - 1:hi])
            return text
        if name == "list_dir":
            full = _inside(workspace, args["path"])
            if not os.path.isdir(full):
                return f"error: no such directory: {args['path']}"
            names = sorted(os.listdir(full))
            out = [n + "/" if os.path.isdir(os.path.join(full, n)) else n for n in names]
            return "\n".join(out) if out else "(empty)"
        return f"error: unknown tool: {name}"
    except subprocess.TimeoutExpired:
        return f"error: timed out after {TIMEOUT_S} s"
    except (KeyError, ValueError, OSError) as e:
        return f"error: {e}"
