"""Every constant of the AdA paper (Calian et al., ICLR 2022) that adaaug uses, in one place.

Section references are to the paper (``shared/docs/paper-adversarial-augment.txt``).
"""
from __future__ import annotations

# Algorithm 1 / App. E.4 -------------------------------------------------------------
NU_EDSR_CIFAR10 = 0.015          # relative perturbation radius ν (Fig. 2, Table 7)
STEP_SIZE_MEDIAN_FRACTION = 0.25  # η = ¼ · median_i ν‖φ_i‖₂ (App. E.4)
CIFAR10_STEPS = 10               # M on CIFAR-10 (App. E.4)
IMAGENET_STEPS = 3               # M on ImageNet (App. E.4)
IMAGENET_STEP_SCALE = 10 / 3     # η × 10/3 on ImageNet (App. E.4)
CIFAR10_NANO_BATCH = 8           # examples per nano-batch per accelerator (App. B.1)
IMAGENET_NANO_BATCH = 1

# SSIM line search (App. F) ------------------------------------------------------------
CIFAR10_SSIM_THRESHOLD = 0.3     # t: maximum SSIM distance 1 − SSIM(x, x̂)
IMAGENET_SSIM_THRESHOLD = 0.7
LINE_SEARCH_POINTS = 9           # equally spaced γ in [0, 1]
SSIM_KERNEL_SIZE = 11            # App. F.1 (Wang et al. 2004)
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03

# Companion augmentations (App. E.5; Hendrycks et al. 2020) -------------------------
AUGMIX_WIDTH = 3
AUGMIX_DEPTH = (1, 3)
AUGMIX_SEVERITY = 3
AUGMIX_ALPHA = 1.0
AUGMIX_JSD_LAMBDA = 12.0

# Training protocol (App. E.1–E.3) ------------------------------------------------
CIFAR10_EPOCHS = 300
CIFAR10_BATCH = 1024
CIFAR10_WEIGHT_DECAY = 1e-4
IMAGENET_EPOCHS = 90
IMAGENET_BATCH = 4096
IMAGENET_WEIGHT_DECAY = 5e-4
IMAGENET_TRAIN_SIZE = 128
IMAGENET_EVAL_SIZE = 224
BASE_LR = 0.1                    # effective LR = max(BASE_LR · batch / 256, BASE_LR)
MOMENTUM = 0.9                   # Nesterov
WARMUP_EPOCHS = 5
