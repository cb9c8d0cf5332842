"""Run the augmentation tests single-threaded: their tensors are tiny, and on a busy 2-core
machine intra-op threads cost far more than they save (measured: ~100× slower with 2 threads
while another job holds both cores). Restored after each test."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
