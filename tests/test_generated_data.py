"""The generated ImageFolder fixtures stand in for CIFAR-10 subsets: right layout, sizes, and learnable classes."""
from __future__ import annotations

import torch

from adaaug.data.images import load_image_folder


def test_generated_sets_have_the_cifar_layout_and_separable_classes(cifar_train_subset, cifar_dev_subset):
    train, dev = load_image_folder(cifar_train_subset), load_image_folder(cifar_dev_subset)
    assert (len(train), len(dev)) == (520, 200) and train.classes == dev.classes and len(train.classes) == 10
    assert train.images.shape[1:] == (3, 32, 32) and train.images.dtype == torch.uint8
    assert torch.bincount(train.labels).tolist() == [52] * 10 and torch.bincount(dev.labels).tolist() == [20] * 10
    # a nearest-centroid classifier on mean colour, fitted on the training set, labels held-out images
    # (an independent, much weaker learner than the networks the training tests run)
    feats = [d.images.float().mean((2, 3)) for d in (train, dev)]
    centroids = torch.stack([feats[0][train.labels == c].mean(0) for c in range(10)])
    predicted = torch.cdist(feats[1], centroids).argmin(1)
    accuracy = (predicted == dev.labels).float().mean()
    assert accuracy > 0.8, accuracy
    assert len({bytes(x.numpy()) for x in train.images}) == 520  # no duplicates
