"""Cost of one demo-model training step, against this machine's own fp32 matmul rate (measured in the same run).

The 60-minute training budget is spent almost entirely in train.py's steps, so their cost decides how far a
recipe gets (see the model card's "Tried"). This prints seconds per batch, transcripts and tokens per second, the
matmul FLOPs of a step (torch profiler) as a rate, the rate of one large fp32 matmul with the same threads, their
ratio, and the ops that take the time.

  python3 tests/reference/demo_model/bench_step.py --data build-demo/data --model-dir models/demo [--set F=V ...]
"""
import argparse
import os
import random
import sys
import time

import torch
from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train as T  # noqa: E402


def matmul_peak(threads, n=2048, reps=5):
    """GFLOP/s of an n x n fp32 matmul: what this machine does when the work is large and regular."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model-dir", required=True, help="folder with tokenizer.json")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10, help="timed steps (after 3 warm-up steps)")
    ap.add_argument("--limit", type=int, default=3000, help="transcripts to load (batches are drawn from these)")
    T.add_set_argument(ap)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    tok = Tokenizer.from_file(os.path.join(args.model_dir, "tokenizer.json"))
    pad_id = tok.token_to_id("<|endoftext|>")
    prefix_ids = T.load_prefix(tok, args.data)
    train = T.load_split(tok, args.data, "train", prefix_ids, args.limit)
    model, mtp, params, opt = T.make_model(tok, args.set, 0)
    for g in opt.param_groups:
        g["lr"] = 1e-3
    prefix = torch.tensor([prefix_ids])
    order = T.batches(train, args.batch, random.Random(0))

    def step():  # exactly train.py's update (MTP weight 0.3, gradient clipping)
        ids, mask = T.collate(train, order.pop(), pad_id)
        T.train_step(model, mtp, params, opt, prefix, ids, mask, 0.3)
        return int(ids.numel())

    for _ in range(3):
        step()
    t = time.perf_counter()
    tokens = sum(step() for _ in range(args.steps))
    dt = (time.perf_counter() - t) / args.steps

    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        t = time.perf_counter()
        prof_steps = 3
        prof_tokens = sum(step() for _ in range(prof_steps))
        prof_dt = (time.perf_counter() - t) / prof_steps
    events = prof.key_averages()
    # batches differ in length: scale the profiled steps' FLOPs per padded token to the timed steps' tokens
    flops = sum(e.flops for e in events) / prof_tokens * tokens / args.steps
    peak = matmul_peak(args.threads)
    total = sum(e.self_cpu_time_total for e in events)

    print(f"demo-model training step, batch {args.batch}, {args.threads} threads, "
          f"{sum(p.numel() for p in params) / 1e6:.2f}M parameters (main + MTP)")
    print(f"  {dt:.3f} s/step   {args.batch / dt:.1f} transcripts/s   "
          f"{tokens / args.steps / dt:.0f} padded suffix tokens/s")
    rate = flops / dt / 1e9
    print(f"  matmul work {flops / 1e9:.1f} GFLOP/step (profiler count, per token) -> {rate:.1f} GFLOP/s "
          f"at {dt:.3f} s/step")
    print(f"  one 2048x2048 fp32 matmul, same threads: {peak:.1f} GFLOP/s")
    print(f"  ratio: the step does its matmul work at {rate / peak:.1%} of that rate")
    print(f"  self time by op (profiled steps, {prof_dt:.3f} s/step with the profiler's overhead):")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:10]:
        print(f"    {e.self_cpu_time_total / total:6.1%}  {e.key}  ({e.count / prof_steps:.0f} calls/step)")


if __name__ == "__main__":
    main()
