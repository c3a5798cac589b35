"""Behaviour of the demo model through the real stack: every held-out task runs as `qnext run TASK --json`
(C++ engine, greedy, constrained tool calls, tools executed in the sandbox) and is judged like evaluate.py:
the tools called equal the expected multiset (no call for no-tool tasks), the final answer contains every
expected substring, and the expected files exist with exactly the expected contents.

  python3 tests/reference/demo_model/run_heldout.py --qnext build/qnext --model models/demo \
      --tasks tests/data/demo/heldout_tasks.jsonl --out build-demo/heldout_qnext.json [--jobs 2]

Prints a per-family table and writes every task's outcome (tools called, final answer, failed checks) to --out.
Only the standard library: it runs where the C++ build runs.
"""
import argparse
import collections
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile


def task_file(task):
    exp = task["expect"]
    return {
        "name": task["id"],
        "mode": task["mode"],
        "tools": {"builtin": True},
        "files": task["setup_files"],
        "limits": {"max_steps": 6, "max_tokens_per_step": 256, "max_total_tokens": 2048, "tool_timeout_s": 20},
        "messages": [task["user"]],
        "checks": {
            "final_answer_contains": exp["answer_contains"],
            "files": {p: {"equals": v} for p, v in exp["files"].items()},
            "stop": "final_answer",
        },
    }


def run_one(qnext, model, task, tmp):
    path = os.path.join(tmp, task["id"] + ".json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(task_file(task), f)
    proc = subprocess.run([qnext, "--quiet", "run", path, "--model", model, "--json"], capture_output=True,
                          text=True, timeout=300)
    called, final, checks, err = [], None, [], None
    for line in proc.stdout.splitlines():
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue
        if ev.get("event") == "tool_call":
            called.append(ev["name"])
        elif ev.get("event") == "turn_done":
            final = ev.get("final_answer")
            err = ev.get("error") or None
        elif ev.get("event") == "done":
            checks = [c for c in ev["checks"] if not c["passed"]]
    tools_ok = sorted(called) == sorted(task["expect"]["tools"])
    checks_ok = proc.returncode == 0
    return {"id": task["id"], "family": task["family"], "mode": task["mode"], "ok": tools_ok and checks_ok,
            "tools_ok": tools_ok, "checks_ok": checks_ok, "exit_code": proc.returncode, "called": called,
            "final": final, "failed_checks": checks, "error": err,
            "stderr": proc.stderr[-500:] if proc.returncode not in (0, 2) else ""}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qnext", default="build/qnext")
    ap.add_argument("--model", default="models/demo")
    ap.add_argument("--tasks", default="tests/data/demo/heldout_tasks.jsonl")
    ap.add_argument("--out", default="build-demo/heldout_qnext.json")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="first N tasks per family (0 = all)")
    args = ap.parse_args()
    tasks, per = [], collections.Counter()
    with open(args.tasks, encoding="utf-8") as f:
        for line in f:
            t = json.loads(line)
            per[t["family"]] += 1
            if not args.limit or per[t["family"]] <= args.limit:
                tasks.append(t)
    with tempfile.TemporaryDirectory(prefix="qnext-heldout-") as tmp:
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            results = list(pool.map(lambda t: run_one(args.qnext, args.model, t, tmp), tasks))
    fam = collections.defaultdict(lambda: [0, 0])
    for r in results:
        fam[r["family"]][0] += 1
        fam[r["family"]][1] += r["ok"]
    print(f"{'family':<10} {'tasks':>6} {'success':>8}")
    for k in sorted(fam):
        n, ok = fam[k]
        print(f"{k:<10} {n:>6} {ok / n:>8.1%}")
    total = sum(r["ok"] for r in results)
    print(f"{'all':<10} {len(results):>6} {total / len(results):>8.1%}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"summary": {k: {"tasks": n, "success": ok / n} for k, (n, ok) in fam.items()},
                   "success": total / len(results), "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
