"""Generates the demo-model corpus (seeded): training transcripts and the held-out task set.

Every tool call in a transcript was really executed (demo_tools.run_tool) and every transcript is rendered with
the official Qwen3-Next template (Instruct, or Thinking for the thinking-mode variant) through transformers'
jinja renderer, with tools = configs/tools/builtin.json verbatim (what the runtime renders).

  python3 gen_data.py --out build-demo/data [--train 8000] [--heldout 245] [--seed 1]
"""
import argparse
import json
import multiprocessing
import os
import random
import sys

from transformers.utils.chat_template_utils import render_jinja_template

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from families import FAMILIES, PRACTICE_POOL, dumps, make_task  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
TOOLS_JSON = os.path.join(REPO, "configs", "tools", "builtin.json")
TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
THINKING_SHARE = 0.25
# copy practice: the families that copy strings, with strings drawn from PRACTICE_POOL (see families.FORMS)
PRACTICE_FAMILIES = {"string": 0.3, "file": 0.25, "two_step": 0.15, "parallel": 0.2, "no_tool": 0.1}


def load_templates():
    with open(os.path.join(TEMPLATES, "qwen3-next-instruct.jinja"), encoding="utf-8") as f:
        instruct = f.read()
    with open(os.path.join(TEMPLATES, "qwen3-next-thinking.jinja"), encoding="utf-8") as f:
        thinking = f.read()
    return {"instruct": instruct, "thinking": thinking}


def render(template, tools, messages, add_generation_prompt=False):
    out, _ = render_jinja_template(conversations=[messages], tools=tools, chat_template=template,
                                   add_generation_prompt=add_generation_prompt)
    return out[0]


def train_task(key):
    """Training task number i: its own RNG (seeded by seed and i), so tasks can be made in parallel."""
    seed, i = key
    rng = random.Random(f"train-{seed}-{i}")
    family = rng.choices(list(FAMILIES), list(FAMILIES.values()))[0]
    return make_task(rng, family, rng.random() < THINKING_SHARE)


def practice_task(key):
    """Copy-practice task number i (training only; its own RNG stream, so train.jsonl and the held-out set are the
    same with or without practice): a copying family whose strings mix WORDS with their reversed, upper-case and
    title-case forms, the rare whole tokens that the held-out reversal and case tasks have to copy."""
    seed, i = key
    rng = random.Random(f"practice-{seed}-{i}")
    family = rng.choices(list(PRACTICE_FAMILIES), list(PRACTICE_FAMILIES.values()))[0]
    return make_task(rng, family, rng.random() < THINKING_SHARE, pool=PRACTICE_POOL)


def heldout_candidate(key):
    """Held-out candidate j: round-robin over families (every family gets >= n/7 tasks), 20% thinking."""
    seed, j, attempt = key
    rng = random.Random(f"heldout-{seed}-{j}-{attempt}")
    family = list(FAMILIES)[j % len(FAMILIES)]
    return make_task(rng, family, rng.random() < 0.2)


def gen_heldout(pool, seed, n, forbidden_users):
    tasks = pool.map(heldout_candidate, [(seed, j, 0) for j in range(n)], chunksize=8)
    for j, t in enumerate(tasks):
        attempt = 0
        while t["family"] != "no_tool" and t["user"] in forbidden_users:  # new numbers, strings, file names
            attempt += 1
            t = heldout_candidate((seed, j, attempt))
        t["id"] = f"{t['family']}-{j:03d}"
        tasks[j] = t
    return tasks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--train", type=int, default=8000)
    ap.add_argument("--heldout", type=int, default=245)
    ap.add_argument("--practice", type=int, default=0, help="copy-practice transcripts (practice.jsonl)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--heldout-only", action="store_true")
    ap.add_argument("--export", help="also write the held-out tasks (without rendered text) here")
    ap.add_argument("--jobs", type=int, default=8, help="worker processes (the result does not depend on it)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with open(TOOLS_JSON, encoding="utf-8") as f:
        tools = json.load(f)
    templates = load_templates()

    with multiprocessing.Pool(args.jobs) as pool:
        if args.heldout_only:  # keep the existing train.jsonl (same seed) and only remake the held-out set
            with open(os.path.join(args.out, "train.jsonl"), encoding="utf-8") as f:
                train = [json.loads(line) for line in f]
        else:
            train = pool.map(train_task, [(args.seed, i) for i in range(args.train)], chunksize=16)
        seen = {t["user"] for t in train}
        heldout = gen_heldout(pool, args.seed, args.heldout, seen)
        practice = pool.map(practice_task, [(args.seed, i) for i in range(args.practice)], chunksize=16)
    held_users = {t["user"] for t in heldout}
    practice = [t for t in practice if t["user"] not in held_users]  # the held-out users stay unseen

    splits = [("heldout", heldout)] if args.heldout_only else [("train", train), ("heldout", heldout)]
    if args.practice:
        splits.append(("practice", practice))
    elif not args.heldout_only and os.path.exists(os.path.join(args.out, "practice.jsonl")):
        os.remove(os.path.join(args.out, "practice.jsonl"))  # train.py reads it when present: none asked, none kept
    for name, tasks in splits:
        with open(os.path.join(args.out, f"{name}.jsonl"), "w", encoding="utf-8") as f:
            for t in tasks:
                t["text"] = render(templates[t["mode"]], tools, t["messages"])
                f.write(dumps(t) + "\n")
    # the shared system prefix (identical for every transcript, both modes)
    prefix = render(templates["instruct"], tools, [{"role": "user", "content": "x"}])
    prefix = prefix[: prefix.index("<|im_end|>\n") + len("<|im_end|>\n")]
    for t in train + heldout + practice:
        assert t["text"].startswith(prefix)
    if args.export:  # the committed held-out task file for the C++ end-to-end test
        with open(args.export, "w", encoding="utf-8") as f:
            for t in heldout:
                f.write(dumps({k: t[k] for k in ("id", "family", "kind", "mode", "user", "setup_files", "expect",
                                                 "messages")}) + "\n")
    with open(os.path.join(args.out, "prefix.txt"), "w", encoding="utf-8") as f:
        f.write(prefix)
    counts = {}
    for t in train:
        counts[t["family"]] = counts.get(t["family"], 0) + 1
    print(f"train {len(train)} {counts}; heldout {len(heldout)}; practice {len(practice)}; prefix {len(prefix)} chars")


if __name__ == "__main__":
    main()
