"""Robust accuracy: the reference AutoAttack and adaaug's PGD against torchattacks' ports, seed by seed.

``adaaug eval --attacks`` used torchattacks (``AutoAttack`` and ``PGD``/``PGDL2``) up to 0.2.1; it now
runs the authors' AutoAttack (``pyautoattack``) and its own PGD (:func:`adaaug.evaluate.attacks.pgd_fooled`).
This script measures both on the packaged ResNet-20 and a class-balanced slice of CIFAR-10 test images,
at the protocol's radii (ℓ∞ 1/255, 2/255; ℓ2 0.5, 1.0), with several seeds per implementation, so that a
difference between implementations can be set against the spread between seeds of the same one.

torchattacks is not one of adaaug's dependencies (it pins ``requests~=2.25.1``); install it, in a
scratch environment, to run this script:

    pip install torchattacks --no-deps   # next to adaaug[protocol]; --no-deps keeps requests as it is
    python benchmarks/compare_autoattack.py --data cifar10-test/ --per-class 10 --seeds 0 1 2

``--data``: a folder ``<class>/<image>`` in CIFAR-10's class order (alphabetical), or a ``.tar.gz`` of one.
Prints a table and writes JSON to ``benchmarks/results/`` (``--out``).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from adaaug.evaluate.attacks import preserved_state, robust_accuracy
from adaaug.weights import load_classifier

RADII = (("Linf", 1 / 255), ("Linf", 2 / 255), ("L2", 0.5), ("L2", 1.0))


def load_images(path: Path, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``per_class`` images (sorted by name) of each class folder: float N×3×32×32, int64 N."""
    if path.is_file():
        tmp = Path(tempfile.mkdtemp(prefix="cifar10-"))
        with tarfile.open(path) as tar:
            tar.extractall(tmp, filter="data")
        path = tmp
    while len([d for d in path.iterdir() if d.is_dir()]) == 1:  # e.g. the archive's test/ folder
        path = next(d for d in path.iterdir() if d.is_dir())
    images, labels = [], []
    for label, folder in enumerate(sorted(d for d in path.iterdir() if d.is_dir())):
        for file in sorted(folder.iterdir())[:per_class]:
            images.append(np.asarray(Image.open(file).convert("RGB"), dtype=np.float32) / 255)
            labels.append(label)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return x, torch.tensor(labels)


STANDARD = ("apgd-ce", "apgd-t", "fab-t", "square")


def torchattacks_ensemble(model, *, norm: str, eps: float, seed: int, attacks: tuple[str, ...], steps: int):
    """torchattacks' AutoAttack, standard version, restricted to ``attacks``: with ``steps=10`` (torchattacks'
    default, which its ``AutoAttack`` keeps) exactly what ``torchattacks.AutoAttack(version="standard")`` runs."""
    import torchattacks as ta

    make = {"apgd-ce": lambda: ta.APGD(model, norm=norm, eps=eps, steps=steps, seed=seed, loss="ce", n_restarts=1),
            "apgd-t": lambda: ta.APGDT(model, norm=norm, eps=eps, steps=steps, seed=seed, n_classes=10, n_restarts=1),
            "fab-t": lambda: ta.FAB(model, norm=norm, eps=eps, steps=steps, seed=seed, multi_targeted=True,
                                    n_classes=10, n_restarts=1),
            "square": lambda: ta.Square(model, norm=norm, eps=eps, seed=seed, n_queries=5000, n_restarts=1)}
    parts = [make[a]() for a in attacks]
    return parts[0] if len(parts) == 1 else ta.MultiAttack(parts)


def torchattacks_accuracy(model, x, y, *, norm, eps, method, seed, steps, restarts, attacks=STANDARD,
                          aa_steps=10, batch_size=256) -> float:
    """adaaug 0.2.1's ``robust_accuracy`` (torchattacks); ``aa_steps`` other than 10 departs from it."""
    import torchattacks

    with preserved_state(model), torch.random.fork_rng():
        torch.manual_seed(seed)
        with torch.no_grad():
            robust = model(x).argmax(1) == y
        if method == "autoattack":
            attacks = [torchattacks_ensemble(model, norm=norm, eps=eps, seed=seed, attacks=attacks, steps=aa_steps)]
        else:
            cls = torchattacks.PGD if norm == "Linf" else torchattacks.PGDL2
            attacks = [cls(model, eps=eps, alpha=2.5 * eps / steps, steps=steps, random_start=True)] * restarts
        for attack in attacks:
            for lo in range(0, len(x), batch_size):
                idx = torch.arange(lo, min(lo + batch_size, len(x)))
                idx = idx[robust[idx]]
                if len(idx) == 0:
                    continue
                adv = attack(x[idx], y[idx])
                model.eval()
                with torch.no_grad():
                    robust[idx] &= model(adv).argmax(1) == y[idx]
    return 100.0 * robust.float().mean().item()


def run(impl: str, model, x, y, args, **kw) -> float:
    if impl == "adaaug":
        attacks = None if args.attacks == list(STANDARD) else tuple(args.attacks)
        return robust_accuracy(model, x, y, attacks=attacks, **kw)
    steps = int(impl.split("-")[1]) if "-" in impl else 10
    return torchattacks_accuracy(model, x, y, attacks=tuple(args.attacks), aa_steps=steps, **kw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--per-class", type=int, default=10)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=["autoattack", "pgd"], choices=["autoattack", "pgd"])
    ap.add_argument("--attacks", nargs="+", default=list(STANDARD), choices=list(STANDARD),
                    help="AutoAttack's attacks to run (default: the standard version's four); e.g. apgd-ce apgd-t")
    ap.add_argument("--torchattacks-steps", type=int, nargs="+", default=[10],
                    help="iterations of torchattacks' APGD/APGD-T/FAB: 10 is what its AutoAttack runs (and adaaug "
                         "0.2.1 with it); 100 is the reference's count")
    ap.add_argument("--radii", nargs="+", default=[f"{n}:{e:g}" for n, e in RADII],
                    help="NORM:EPS pairs (default: the protocol's four), e.g. Linf:0.00392157 L2:0.5")
    ap.add_argument("--skip", nargs="+", default=[], choices=["torchattacks", "adaaug"],
                    help="leave an implementation out (to run the two in parallel processes)")
    ap.add_argument("--pgd-steps", type=int, default=100)
    ap.add_argument("--pgd-restarts", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "autoattack-compare-cpu.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import torchattacks  # noqa: F401  (fail before any work when it is missing)
    from importlib.metadata import version

    model = load_classifier("resnet20")
    x, y = load_images(args.data, args.per_class)
    with torch.no_grad():
        clean = 100.0 * (model(x).argmax(1) == y).float().mean().item()
    print(f"{len(x)} images, clean accuracy {clean:.1f}%; AutoAttack: {' + '.join(args.attacks)}", flush=True)
    rows = []
    for method in args.methods:
        impls = [f"torchattacks-{n}" for n in args.torchattacks_steps] if method == "autoattack" else ["torchattacks"]
        impls = [i for i in impls + ["adaaug"] if i.split("-")[0] not in args.skip]
        for norm, eps in ((r.split(":")[0], float(r.split(":")[1])) for r in args.radii):
            row = {"method": method, "norm": norm, "eps": eps, "accuracy": {}, "seconds": {}}
            for impl in impls:
                accs, times = {}, []
                for seed in args.seeds:
                    start = time.perf_counter()
                    accs[str(seed)] = run(impl, model, x, y, args, norm=norm, eps=eps, method=method, seed=seed,
                                          steps=args.pgd_steps, restarts=args.pgd_restarts)
                    times.append(time.perf_counter() - start)
                row["accuracy"][impl], row["seconds"][impl] = accs, statistics.mean(times)
            ours = list(row["accuracy"].get("adaaug", {}).values())
            one = 100.0 / len(x)  # one example
            row["compare"] = {}
            for impl in impls[:-1] if ours else []:
                theirs = list(row["accuracy"][impl].values())
                diff = statistics.mean(ours) - statistics.mean(theirs)
                spread = max(max(ours) - min(ours), max(theirs) - min(theirs))
                row["compare"][impl] = {"difference_of_means": diff, "spread_between_seeds": spread,
                                        "within_randomness": abs(diff) <= max(spread, one)}
            rows.append(row)
            cells = "  ".join(f"{impl} {' '.join(f'{v:5.1f}' for v in row['accuracy'][impl].values())} "
                              f"({row['seconds'][impl]:.0f} s)" for impl in impls)
            print(f"{method:10s} {norm:4s} {eps:.5f}  {cells}", flush=True)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        commit = ""
    result = {"images": len(x), "per_class": args.per_class, "clean_accuracy": clean, "seeds": args.seeds,
              "autoattack_attacks": args.attacks, "torchattacks_steps": args.torchattacks_steps,
              "pgd_steps": args.pgd_steps, "pgd_restarts": args.pgd_restarts, "threads": args.threads,
              "versions": {p: version(p) for p in ("torch", "torchattacks", "pyautoattack")},
              "machine": f"{platform.machine()}, {args.threads} thread(s)", "date": time.strftime("%Y-%m-%d"),
              "commit": commit, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
