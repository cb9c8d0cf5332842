"""Per-example perturbed forward+backward through a backbone: vmap vs a Python loop vs shared weights.

Three ways to get, for a batch of B images, the gradient of a classifier loss with
respect to backbone weights:

- ``vmap`` (the name is historical): one weight set per example (φ + δ⁽ⁿ⁾) over nano-batches of
  ``--chunk-size`` through the corruptor's per-example pass, gradients w.r.t. every δ⁽ⁿ⁾ (what AdA
  does; since adaaug.per_example the package's backbones run without ``vmap``, see
  ``bench_per_example.py``);
- ``loop``: the same per-example gradients with a Python loop over examples;
- ``shared``: ONE weight set for the whole batch, forward+backward with weight
  gradients (the cost floor that per-example weights are compared against).

Then one full ``ada(x, y)`` call against the sum of its parts (random init, M
steps, final forward, line search). Prints a table, writes JSON.

    python benchmarks/bench_perturbation.py --backbone edsr --batch-size 64 --device cpu
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from adaaug import AdversarialAugment
from adaaug.backbones import build_backbone
from adaaug.models import build_classifier
from adaaug.line_search import ssim_line_search
from adaaug.experiments.bench_measure import median_time as timed
from adaaug.perturb import example_seeds, project_, random_init, sign_step_


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default="edsr")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--chunk-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int)
    p.add_argument("--skip-loop", action="store_true", help="skip the (slow) per-example loop")
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_classifier("resnet20").to(device).eval()
    backbone = build_backbone(args.backbone).to(device).eval()
    for q in backbone.parameters():
        q.requires_grad_(False)
    x = torch.rand(args.batch_size, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch_size,), device=device)
    ada = AdversarialAugment(model, backbone=backbone, steps=args.steps, chunk_size=args.chunk_size)
    c = ada.corruptors[0]
    params, buffers, radii = c.state(device, torch.float32)
    delta = random_init(params, radii, example_seeds(args.batch_size, torch.Generator().manual_seed(0)))

    def vmap_grad():
        for chunk in torch.split(torch.arange(args.batch_size, device=device), args.chunk_size):
            leaves = {k: v[chunk].requires_grad_(True) for k, v in delta.items()}
            loss = F.cross_entropy(model(c.corrupt(x[chunk], leaves, params, buffers)), y[chunk], reduction="sum")
            torch.autograd.grad(loss, list(leaves.values()))

    def loop_grad():
        for n in range(args.batch_size):
            leaves = {k: v[n:n + 1].requires_grad_(True) for k, v in delta.items()}
            w = {k: params[k] + leaves[k][0] for k in params}
            out = torch.func.functional_call(backbone, {**w, **buffers}, (x[n:n + 1],)).clamp(0, 1)
            torch.autograd.grad(F.cross_entropy(model(out), y[n:n + 1]), list(leaves.values()))

    shared_w = {k: v.clone().requires_grad_(True) for k, v in params.items()}

    def shared_grad():
        out = torch.func.functional_call(backbone, {**shared_w, **buffers}, (x,)).clamp(0, 1)
        torch.autograd.grad(F.cross_entropy(model(out), y, reduction="sum"), list(shared_w.values()))

    rows = {}
    rows["vmap per-example fwd+bwd"] = timed(vmap_grad, device, args.repeats)
    if not args.skip_loop:
        rows["loop per-example fwd+bwd"] = timed(loop_grad, device, max(1, args.repeats - 1))
    rows["shared-weight fwd+bwd"] = timed(shared_grad, device, args.repeats)

    # one full call vs the sum of its parts
    g = lambda: torch.Generator().manual_seed(0)
    rows["ada(x, y) full call"] = timed(lambda: ada(x, y, generator=g()), device, max(1, args.repeats - 1))
    parts = {}
    parts["init"] = timed(lambda: random_init(params, radii, example_seeds(args.batch_size, g())), device, args.repeats)
    grads = {k: torch.randn_like(v) for k, v in delta.items()}
    work = {k: v.clone() for k, v in delta.items()}

    def step_and_project():  # per nano-batch, in place, as the transform does it
        for start in range(0, args.batch_size, args.chunk_size):
            sl = slice(start, start + args.chunk_size)
            project_(sign_step_({k: v[sl] for k, v in work.items()}, {k: v[sl].clone() for k, v in grads.items()},
                                c.step_size), radii)
    parts["sign step + projection (×M)"] = args.steps * timed(step_and_project, device, args.repeats)
    parts["fwd+bwd (×M)"] = args.steps * rows["vmap per-example fwd+bwd"]

    def final_forward():
        with torch.no_grad():
            for chunk in torch.split(torch.arange(args.batch_size, device=device), args.chunk_size):
                c.corrupt(x[chunk], {k: v[chunk] for k, v in delta.items()}, params, buffers)
    parts["final forward"] = timed(final_forward, device, args.repeats)
    with torch.no_grad():
        x_hat = (x + 0.4 * torch.randn_like(x)).clamp(0, 1)
    parts["line search (all examples violate)"] = timed(lambda: ssim_line_search(x, x_hat, 0.3), device,
                                                        args.repeats)
    rows["sum of parts"] = sum(parts.values())

    v = rows["vmap per-example fwd+bwd"]
    ratios = {"vmap / shared (target ≤ 1.5)": v / rows["shared-weight fwd+bwd"],
              "full call / sum of parts": rows["ada(x, y) full call"] / rows["sum of parts"]}
    if "loop per-example fwd+bwd" in rows:
        ratios["loop / vmap (target ≥ 3 CPU, ≥ 20 CUDA)"] = rows["loop per-example fwd+bwd"] / v
    print(f"\nbackbone={args.backbone} batch={args.batch_size} chunk={args.chunk_size} steps={args.steps} "
          f"device={device} threads={torch.get_num_threads()}")
    print(f"{'measurement':<45}{'seconds':>10}")
    for k, s in {**rows, **{f'  part: {k}': s for k, s in parts.items()}}.items():
        print(f"{k:<45}{s:>10.3f}")
    for k, r in ratios.items():
        print(f"{k:<55}{r:>8.2f}×")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    record = {"args": vars(args), "seconds": rows, "parts": parts, "ratios": ratios, "torch": torch.__version__,
              "machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
              "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine(),
              "commit": commit, "date": time.strftime("%Y-%m-%d")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"perturbation-{args.backbone}-{device.type}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
