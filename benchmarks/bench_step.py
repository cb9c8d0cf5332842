"""One AdA training step vs a nominal step and vs its floor; memory vs chunk_size.

Same as ``adaaug bench``; see the module adaaug.experiments.bench.

    python benchmarks/bench_step.py --backbones edsr cae vqvae unet --device cpu
"""
import argparse
import sys

from adaaug.experiments import bench

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=bench.__doc__.split("\n\n")[0])
    bench.add_arguments(parser)
    sys.exit(bench.main(parser.parse_args()))
