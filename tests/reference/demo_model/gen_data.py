"""Generates the demo-model corpus (seeded): training transcripts and the held-out task set.

Every tool call in a transcript was really executed (demo_tools.run_tool) and every transcript is rendered with
the official Qwen3-Next template (Instruct, or Thinking for the thinking-mode variant) through transformers'
jinja renderer, with tools = configs/tools/builtin.json verbatim (what the runtime renders).

  python3 gen_data.py --out build-demo/data [--train 16000] [--heldout 240] [--seed 1]
"""
import argparse
import json
import os
import random
import sys

from transformers.utils.chat_template_utils import render_jinja_template

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from families import FAMILIES, dumps, make_task  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
TOOLS_JSON = os.path.join(REPO, "configs", "tools", "builtin.json")
TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
THINKING_SHARE = 0.25


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


def gen_tasks(rng, n, forbidden_users=None, thinking_share=THINKING_SHARE):
    names, weights = list(FAMILIES), list(FAMILIES.values())
    tasks = []
    while len(tasks) < n:
        family = rng.choices(names, weights)[0]
        task = make_task(rng, family, rng.random() < thinking_share)
        if forbidden_users is not None and family != "no_tool" and task["user"] in forbidden_users:
            continue
        tasks.append(task)
    return tasks


def gen_heldout(rng, n, forbidden_users):
    """Round-robin over families so that every family has >= n/7 tasks."""
    tasks = []
    names = list(FAMILIES)
    i = 0
    while len(tasks) < n:
        family = names[i % len(names)]
        task = make_task(rng, family, rng.random() < 0.2)
        if family != "no_tool" and task["user"] in forbidden_users:
            continue
        task["id"] = f"{family}-{len(tasks):03d}"
        tasks.append(task)
        i += 1
    return tasks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--train", type=int, default=16000)
    ap.add_argument("--heldout", type=int, default=245)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with open(TOOLS_JSON, encoding="utf-8") as f:
        tools = json.load(f)
    templates = load_templates()

    train = gen_tasks(random.Random(args.seed), args.train)
    seen = {t["user"] for t in train}
    heldout = gen_heldout(random.Random(args.seed + 1000), args.heldout, seen)

    for name, tasks in (("train", train), ("heldout", heldout)):
        with open(os.path.join(args.out, f"{name}.jsonl"), "w", encoding="utf-8") as f:
            for t in tasks:
                t["text"] = render(templates[t["mode"]], tools, t["messages"])
                f.write(dumps(t) + "\n")
    # the shared system prefix (identical for every transcript, both modes)
    prefix = render(templates["instruct"], tools, [{"role": "user", "content": "x"}])
    prefix = prefix[: prefix.index("<|im_end|>\n") + len("<|im_end|>\n")]
    for t in train + heldout:
        assert t["text"].startswith(prefix)
    with open(os.path.join(args.out, "prefix.txt"), "w", encoding="utf-8") as f:
        f.write(prefix)
    counts = {}
    for t in train:
        counts[t["family"]] = counts.get(t["family"], 0) + 1
    print(f"train {len(train)} {counts}; heldout {len(heldout)}; prefix {len(prefix)} chars")


if __name__ == "__main__":
    main()
