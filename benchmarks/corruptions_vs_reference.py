"""Print how close adaaug's corruptions (ImageNet-C severities) are to the ``imagecorruptions`` package.

    pip install --no-deps imagecorruptions==1.1.2   # the reference; adaaug does not need it
    python benchmarks/corruptions_vs_reference.py --size 64 224

Per corruption and severity 1..5, on one smooth random image: with the same random numbers (numpy's
global RNG, same seed) the largest and mean |adaaug − reference| in grey levels and the PSNR between the
two; and, with independent draws (4 seeds), the mean distortion |corrupted − clean| of each, whose ratio
is what matters where the algorithms differ (impulse noise draws from an unseeded generator in the
reference; elastic transform, frost and snow depart from make_imagenet_c.py there, see
``adaaug.corruptions``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "corruptions"))
from _corruption_reference import psnr, run_ours, run_reference, smooth_images  # noqa: E402

from adaaug.corruptions import ALL, corrupt  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, nargs="+", default=[64, 224])
    ap.add_argument("--corruptions", nargs="+", default=list(ALL))
    args = ap.parse_args()
    for size in args.size:
        image = smooth_images(1, size, seed=3)[0]
        print(f"\n{size}×{size}: same draws max/mean |diff| (PSNR dB) per severity | mean distortion ours/ref")
        for name in args.corruptions:
            cells, ratios = [], []
            for severity in range(1, 6):
                if name != "impulse_noise":
                    ref = run_reference(name, image, severity, 100 + severity).astype(int)
                    ours = run_ours(name, image, severity, 100 + severity).astype(int)
                    d = np.abs(ref - ours)
                    cells.append(f"{d.max():3d}/{d.mean():.3f} ({psnr(ref, ours):5.1f})")
                dist_ref = np.mean([np.abs(run_reference(name, image, severity, s).astype(int) - image).mean()
                                    for s in range(4)])
                dist_ours = np.mean([np.abs(corrupt(image[None], name, severity, params="imagenet",
                                                    rng=np.random.default_rng(s))[0].astype(int) - image).mean()
                                     for s in range(4)])
                ratios.append(f"{dist_ours:.1f}/{dist_ref:.1f}")
            print(f"{name:17s} " + "  ".join(cells) + (" | " if cells else "") + " ".join(ratios), flush=True)


if __name__ == "__main__":
    main()
