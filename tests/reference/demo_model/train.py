"""Trains the demo Qwen3-Next (+ MTP head) on the generated corpus, on CPU, seeded.

Loss: next-token cross-entropy on assistant tokens only, plus mtp_weight x the MTP head's t+2 cross-entropy on
the same targets. Every transcript starts with the same system prompt (the tool declarations), so each step runs
that prefix once (batch 1, with gradients) and continues all rows of the batch from its cache; this is exactly
the full-sequence forward (checked at start-up, see check_shared_forward).

  python3 train.py --data build-demo/data --model-dir models/demo --work build-demo/run --steps 1200
"""
import argparse
import json
import math
import os
import random
import shutil
import sys
import time

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_model as dm  # noqa: E402


def assistant_spans(text, mode):
    """Character spans the model generates: assistant turn bodies through <|im_end|> (the generation prompt,
    incl. the Thinking template's "<think>\\n", is not generated and not trained)."""
    head = "<|im_start|>assistant\n"
    spans, at = [], 0
    while (a := text.find(head, at)) >= 0:
        s = a + len(head)
        if mode == "thinking" and text.startswith("<think>\n", s):
            s += len("<think>\n")
        e = text.index("<|im_end|>", s) + len("<|im_end|>")
        spans.append((s, e))
        at = e
    return spans


def encode_example(tok, text, mode, prefix_ids):
    enc = tok.encode(text, add_special_tokens=False)
    ids = enc.ids
    if ids[: len(prefix_ids)] != prefix_ids:
        raise ValueError("transcript does not start with the shared system prefix tokens")
    spans = assistant_spans(text, mode)
    mask = [any(s <= o[0] < e for s, e in spans) for o in enc.offsets]
    p = len(prefix_ids)
    return ids[p:], mask[p:]


def load_split(tok, data_dir, name, prefix_ids, limit=None):
    out = []
    with open(os.path.join(data_dir, f"{name}.jsonl"), encoding="utf-8") as f:
        for i, line in enumerate(f):
            if limit is not None and i >= limit:
                break
            t = json.loads(line)
            out.append(encode_example(tok, t["text"], t["mode"], prefix_ids))
    return out


def batches(examples, batch, rng):
    """Length-bucketed batches: shuffle, sort chunks of 32 batches by length, shuffle the batches."""
    idx = list(range(len(examples)))
    rng.shuffle(idx)
    out = []
    chunk = batch * 32
    for c in range(0, len(idx), chunk):
        part = sorted(idx[c:c + chunk], key=lambda i: len(examples[i][0]))
        out += [part[j:j + batch] for j in range(0, len(part), batch)]
    rng.shuffle(out)
    return out


def collate(examples, rows, pad_id):
    s = max(len(examples[i][0]) for i in rows)
    ids = torch.full((len(rows), s), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), s), dtype=torch.bool)
    for r, i in enumerate(rows):
        x, m = examples[i]
        ids[r, : len(x)] = torch.tensor(x)
        mask[r, : len(m)] = torch.tensor(m)
    return ids, mask


def losses(model, mtp, prefix, ids, mask):
    """Mean CE of the main head (target suffix[j] from position j-1) and of the MTP head (target suffix[i+1]
    from MTP slot i), both over assistant targets; plus token accuracies."""
    hp, hs, ms = dm.shared_prefix_forward(model, mtp, prefix, ids)
    tgt = mask[:, 1:]
    y = ids[:, 1:][tgt]
    logits = model.lm_head(hs[:, :-1][tgt])
    mlogits = model.lm_head(ms[:, :-1][tgt])
    main = F.cross_entropy(logits, y)
    extra = F.cross_entropy(mlogits, y)
    with torch.no_grad():
        acc = (logits.argmax(-1) == y).float().mean().item()
        macc = (mlogits.argmax(-1) == y).float().mean().item()
    return main, extra, acc, macc, int(y.numel())


def check_shared_forward(model, mtp, prefix, examples, pad_id):
    ids, _ = collate(examples, [0, 1], pad_id)
    with torch.no_grad():
        _, hs, ms = dm.shared_prefix_forward(model, mtp, prefix, ids)
        full = torch.cat([prefix.expand(2, -1), ids], dim=1)
        h, m = dm.full_forward(model, mtp, full)
    p = prefix.shape[1]
    d1 = (h[:, p:] - hs).abs().max().item()
    d2 = (m[:, p - 1:] - ms).abs().max().item()
    if max(d1, d2) > 1e-3:
        raise RuntimeError(f"shared-prefix forward differs from the full forward: {d1} {d2}")
    print(f"shared-prefix forward check: max |diff| hidden {d1:.2e}, mtp {d2:.2e}", flush=True)


def evaluate(model, mtp, prefix, examples, pad_id, batch):
    model.eval()
    tot = [0.0, 0.0, 0.0, 0.0, 0]
    with torch.no_grad():
        for j in range(0, len(examples), batch):
            rows = list(range(j, min(j + batch, len(examples))))
            ids, mask = collate(examples, rows, pad_id)
            a, b, c, d, n = losses(model, mtp, prefix, ids, mask)
            for k, v in enumerate((a.item(), b.item(), c, d)):
                tot[k] += v * n
            tot[4] += n
    model.train()
    return [v / tot[4] for v in tot[:4]]


def checkpoint_folder(model_dir, work):
    """work/ckpt, holding the tokenizer files of model_dir: with the weights of each checkpoint it is a complete
    model folder, so `qnext run --model CKPT` and run_heldout.py can check greedy behaviour while training goes on."""
    ckpt = os.path.join(work, "ckpt")
    os.makedirs(ckpt, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template_thinking.jinja"):
        src = os.path.join(model_dir, name)
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(ckpt, name))
    return ckpt


def apply_overrides(cfg, pairs):
    """--set FIELD=VALUE: experiments change the architecture from the command line (recorded in the exported
    config.json), not by editing make_config."""
    for pair in pairs:
        field, sep, text = pair.partition("=")
        if not sep or not hasattr(cfg, field):
            raise SystemExit(f"--set {pair!r}: expected FIELD=VALUE with FIELD a Qwen3NextConfig field")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        setattr(cfg, field, value)
        print(f"config override: {field} = {value!r}", flush=True)
    return cfg


def add_set_argument(ap):
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override one field of demo_model.make_config (VALUE parsed as JSON, else a string), "
                         "e.g. --set num_attention_heads=8 --set num_key_value_heads=4; repeatable")


def load_prefix(tok, data_dir):
    """Token ids of the system prompt every transcript starts with."""
    with open(os.path.join(data_dir, "prefix.txt"), encoding="utf-8") as f:
        return tok.encode(f.read(), add_special_tokens=False).ids


def make_model(tok, overrides, seed):
    """The demo model (+ MTP head) for this tokenizer: vocab rounded up to 64 rows, make_config plus --set."""
    vocab = (tok.get_vocab_size() + 63) // 64 * 64
    cfg = apply_overrides(dm.make_config(vocab, tok.token_to_id("<|im_end|>"), tok.token_to_id("<|endoftext|>")),
                          overrides)
    model, mtp = dm.build(cfg, seed)
    dm.enable_training_cache()
    params = list(model.parameters()) + list(mtp.parameters())
    opt = torch.optim.AdamW(params, lr=0.0, betas=(0.9, 0.95), weight_decay=0.0)
    return model, mtp, params, opt


def train_step(model, mtp, params, opt, prefix, ids, mask, mtp_weight):
    """One update at the optimizer's current learning rate; returns losses(...) + the pre-clip gradient norm."""
    main, extra, acc, macc, n = losses(model, mtp, prefix, ids, mask)
    opt.zero_grad(set_to_none=True)
    (main + mtp_weight * extra).backward()
    gn = torch.nn.utils.clip_grad_norm_(params, 1.0).item()
    opt.step()
    return main, extra, acc, macc, n, gn


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--model-dir", required=True, help="folder with tokenizer.json; the model is exported here")
    ap.add_argument("--work", required=True, help="checkpoints and logs")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=40)
    ap.add_argument("--mtp-weight", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--stop-after", type=int, default=0, help="stop after this step (schedule still --steps)")
    ap.add_argument("--max-minutes", type=float, default=0, help="stop early (after a checkpoint) past this")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N training transcripts")
    add_set_argument(ap)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    os.makedirs(args.work, exist_ok=True)

    tok = Tokenizer.from_file(os.path.join(args.model_dir, "tokenizer.json"))
    eos = [tok.token_to_id("<|im_end|>"), tok.token_to_id("<|endoftext|>")]
    pad_id = tok.token_to_id("<|endoftext|>")
    prefix_ids = load_prefix(tok, args.data)
    train = load_split(tok, args.data, "train", prefix_ids, args.limit)
    practice = (load_split(tok, args.data, "practice", prefix_ids, args.limit)  # gen_data.py --practice
                if os.path.exists(os.path.join(args.data, "practice.jsonl")) else [])
    train += practice
    held = load_split(tok, args.data, "heldout", prefix_ids, 32)
    n_tok = sum(len(x) for x, _ in train)
    print(f"prefix {len(prefix_ids)} tokens; train {len(train)} transcripts ({len(practice)} of them copy practice), "
          f"{n_tok} suffix tokens, {sum(sum(m) for _, m in train)} assistant tokens", flush=True)

    model, mtp, params, opt = make_model(tok, args.set, args.seed)
    n_main = sum(p.numel() for p in model.parameters())
    n_mtp = sum(p.numel() for p in mtp.parameters())
    print(f"params: main {n_main / 1e6:.2f}M, mtp {n_mtp / 1e6:.2f}M", flush=True)
    prefix = torch.tensor([prefix_ids])
    check_shared_forward(model, mtp, prefix, train, pad_id)

    rng = random.Random(args.seed)
    order = []
    t0 = time.time()
    log = open(os.path.join(args.work, "train_log.jsonl"), "a")
    ckpt = checkpoint_folder(args.model_dir, args.work)
    for step in range(1, args.steps + 1):
        if not order:
            order = batches(train, args.batch, rng)
        rows = order.pop()
        ids, mask = collate(train, rows, pad_id)
        warm = min(1.0, step / args.warmup)
        cos = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / args.steps)))
        for g in opt.param_groups:
            g["lr"] = args.lr * warm * cos
        main, extra, acc, macc, n, gn = train_step(model, mtp, params, opt, prefix, ids, mask, args.mtp_weight)
        el = time.time() - t0
        rec = {"step": step, "loss": round(main.item(), 4), "mtp_loss": round(extra.item(), 4),
               "acc": round(acc, 4), "mtp_acc": round(macc, 4), "gnorm": round(gn, 3),
               "lr": round(args.lr * warm * cos, 6), "tokens": n, "elapsed_s": round(el, 1)}
        log.write(json.dumps(rec) + "\n")
        if step % 10 == 0 or step == 1:
            print(json.dumps(rec), flush=True)
        last = (step == args.steps or step == args.stop_after or
                (args.max_minutes and el > args.max_minutes * 60))
        if step % args.ckpt_every == 0 or last:
            ev = evaluate(model, mtp, prefix, held, pad_id, args.batch)
            rec = {"step": step, "heldout_loss": round(ev[0], 4), "heldout_mtp_loss": round(ev[1], 4),
                   "heldout_acc": round(ev[2], 4), "heldout_mtp_acc": round(ev[3], 4)}
            print(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()
            dm.export(model, mtp, ckpt, eos, pad_id)
        if last:
            break
    dm.export(model, mtp, args.model_dir, eos, pad_id)
    print(f"exported to {args.model_dir} after {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
