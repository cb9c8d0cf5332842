"""The counter-based generator against the same hash in Python integers, and its distributions."""
from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from adaaug import counter_rng
from adaaug.counter_rng import MASK64, normals, uniforms, words, words_reference

SEEDS = [0, 1, 2, 12345, 2 ** 62 + 7, 2 ** 63 - 2]


def test_words_equal_the_python_integer_hash():
    w = words(torch.tensor(SEEDS), 5, 3)
    for i, seed in enumerate(SEEDS):
        for j in range(3):
            assert w[i, j].item() & MASK64 == words_reference(seed, 5 + j)
    far = words(torch.tensor([SEEDS[3]]), 2 ** 40, 2)  # large counters wrap the same way
    assert [v & MASK64 for v in far[0].tolist()] == [words_reference(SEEDS[3], 2 ** 40 + j) for j in range(2)]


def test_splitmix64_known_answer():
    # splitmix64 seeded with 0: its first output is 0xE220A8397B1DCDAF (the published sequence); our
    # stream s is splitmix64 seeded with mix64(s), so check the finaliser on the state γ directly
    z = torch.tensor([counter_rng._GOLDEN_S])
    assert counter_rng.mix64_(z).item() & MASK64 == 0xE220A8397B1DCDAF


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 2e-6), (torch.float64, 1e-12)])
def test_normals_and_uniforms_match_a_float64_reference(dtype, tol):
    count = 7  # odd: 4 words, the last sine unused
    z = normals(torch.tensor(SEEDS), 3, count, dtype=dtype)
    u = uniforms(torch.tensor(SEEDS), 3, 4, dtype=dtype)
    assert z.shape == (len(SEEDS), count) and z.dtype == dtype
    for i, seed in enumerate(SEEDS):
        for j in range(count):
            w = words_reference(seed, 3 + j // 2)
            radius = math.sqrt(-2 * math.log(((w >> 40) + 1) / 2 ** 24))
            theta = 2 * math.pi * (w & 0xFFFFFF) / 2 ** 24
            ref = radius * (math.cos(theta) if j % 2 == 0 else math.sin(theta))
            assert abs(z[i, j].item() - ref) <= tol * max(1.0, abs(ref))
        for j in range(4):
            assert u[i, j].item() == (words_reference(seed, 3 + j) >> 40) / 2 ** 24


def test_streams_are_independent_of_each_other_of_the_piece_size_and_of_the_split(monkeypatch):
    seeds = torch.tensor(SEEDS)
    full = normals(seeds, 0, 1001)
    assert torch.equal(normals(seeds[2:4], 0, 1001), full[2:4])
    sizes = [0, 1, 300, 37, 0, 2, 661]  # blocks of any size, across piece boundaries and word halves
    for piece in (37, 1, 10_000):
        monkeypatch.setattr(counter_rng, "_piece", lambda n, total, device, piece=piece: piece)
        assert torch.equal(normals(seeds, 0, 1001), full)
        parts = counter_rng.normals_into(seeds, [torch.empty(len(SEEDS), m) for m in sizes])
        assert torch.equal(torch.cat(parts, dim=1), full)
    assert torch.equal(normals(seeds, 100, 10), full[:, 200:210])  # word 100 holds positions 200, 201


def test_normals_are_standard_normal_and_uncorrelated():
    seeds = torch.arange(20, dtype=torch.int64)  # adjacent seeds: the worst case for a weak mixer
    z = normals(seeds, 0, 10_000).double()
    flat = z.flatten().numpy()
    assert stats.kstest(flat, "norm").pvalue > 1e-3
    assert abs(flat.mean()) < 4 / math.sqrt(flat.size) and abs(flat.var() - 1) < 0.02
    corr = torch.corrcoef(z)  # streams against each other
    off = corr[~torch.eye(20, dtype=torch.bool)]
    assert off.abs().max() < 5 / math.sqrt(10_000)
    # the cosine and sine branch of the same word are uncorrelated too
    assert abs(torch.corrcoef(torch.stack([z[:, 0::2].flatten(), z[:, 1::2].flatten()]))[0, 1]) < 0.02


def test_uniforms_are_uniform():
    u = uniforms(torch.arange(50, dtype=torch.int64), 0, 2000).flatten().double().numpy()
    assert u.min() >= 0 and u.max() < 1
    assert stats.kstest(u, "uniform").pvalue > 1e-3


def test_bad_seeds_raise():
    with pytest.raises(TypeError, match="int64"):
        words(torch.tensor([1.0]), 0, 2)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_words_are_bit_identical_and_normals_close():
    seeds = torch.tensor(SEEDS)
    assert torch.equal(words(seeds.cuda(), 11, 500).cpu(), words(seeds, 11, 500))
    assert torch.allclose(normals(seeds.cuda(), 0, 999).cpu(), normals(seeds, 0, 999), rtol=1e-5, atol=1e-6)
