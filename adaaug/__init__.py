"""adaaug: AdversarialAugment (Calian et al., ICLR 2022) for PyTorch."""
