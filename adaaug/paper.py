"""Every constant of the AdA paper (Calian et al., ICLR 2022) that adaaug uses, in one place.

Section references are to the paper (Calian et al., "Defending against image corruptions through
adversarial augmentations", ICLR 2022).
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

# Standard augmentation before AdA (App. E.5) ------------------------------------------
CIFAR10_PAD = 4                      # zero padding before the random crop back to 32×32
IMAGENET_CROP_SIZE = 224             # random crop (RandomResizedCrop) ...
IMAGENET_CROP_SCALE = (0.08, 1.0)    # ... with torchvision's RandomResizedCrop defaults,
IMAGENET_CROP_RATIO = (3 / 4, 4 / 3)
IMAGENET_CROP_ATTEMPTS = 10          # ... then resized to IMAGENET_TRAIN_SIZE (bilinear)
FLIP_PROBABILITY = 0.5

# AugMix details (Hendrycks et al. 2020, original CIFAR code) -------------------------
AUGMIX_JSD_CLAMP = 1e-7              # the mixture M is clamped to [1e-7, 1] before the log
AUGMIX_LEVEL_MIN = 0.1               # op levels are drawn from U(0.1, severity)
AUGMIX_LEVEL_SCALE = 10.0            # a level maps to magnitude · level / 10
AUGMIX_ROTATE_MAX = 30.0             # degrees
AUGMIX_SHEAR_MAX = 0.3
AUGMIX_TRANSLATE_MAX = 1 / 3         # fraction of the image size
AUGMIX_POSTERIZE_MAX = 4             # bits removed: int(level · 4 / 10)
AUGMIX_SOLARIZE_MAX = 256            # threshold 256 − int(level · 256 / 10), on the 0..255 scale
AUGMIX_ENHANCE_MAX = 1.8             # enhance factor = level · 1.8 / 10 + 0.1 (all_ops only)
AUGMIX_ENHANCE_MIN = 0.1

# DeepAugment (Hendrycks et al., ICCV 2021, "The Many Faces of Robustness") ----------------
# Chance of drawing a DeepAugment-processed sample instead of the clean one (App. E.5: "as
# in Hendrycks et al."). The reference trains on the concatenation of the clean set and its
# processed copies (EDSR and CAE), so with k copies a sample is processed k/(k + 1) of the
# time: 2/3 with the reference's two copies. adaaug applies the same rule to any number of
# copies (``deepaugment_share``): with one copy, 1/2.
DEEPAUGMENT_COPIES = 2               # processed copies in the reference: EDSR and CAE


def deepaugment_share(copies: int = DEEPAUGMENT_COPIES) -> float:
    """Share of processed samples when the clean set and ``copies`` processed copies are concatenated."""
    return copies / (copies + 1)


DEEPAUGMENT_PROBABILITY = deepaugment_share(DEEPAUGMENT_COPIES)  # 2/3
DEEPAUGMENT_EDSR_NUM_OPS = 3         # weight operations per example (with repetition)
DEEPAUGMENT_CAE_NUM_OPS = 1
DEEPAUGMENT_EDSR_ACTIVATION_BLOCK = 5  # second activation distortion after this many residual blocks
DEEPAUGMENT_CAE_DECODER_SHARE = 0.8  # adaaug's reading of "mostly from the decoder"
DEEPAUGMENT_NEGATE_FILTERS = 12      # negate this many output filters
DEEPAUGMENT_NEGATE_FRACTION = 0.2    # ... or this fraction of them
DEEPAUGMENT_NEGATE_HALF_BLOCKS = 5   # negate half the filters (32 of 64) in this many blocks
DEEPAUGMENT_ZERO_FILTERS = 25        # zero this many output filters
DEEPAUGMENT_GELU_FRACTION = 0.5      # −GELU on this fraction of the filters (subset variant)
DEEPAUGMENT_MULT_NOISE_MAX = 2.0     # W ← W · (1 + s·ε), s ~ U(0, 2), ε ~ U(−1, 1)
DEEPAUGMENT_ADD_NOISE = 0.5          # W ← W + U(−0.5, 0.5)
DEEPAUGMENT_ROT90_PAIRS = 5          # rot90 on this many random (block, conv) pairs
DEEPAUGMENT_MASK_PROBABILITY = 0.5   # Rademacher ±1 / Bernoulli(½) weight masks
DEEPAUGMENT_BANK_NOISE_DIVISOR = 6.0  # uniform filter bank scaled by U(0, 1) / 6
DEEPAUGMENT_BANK_DIRICHLET = 0.1     # Dirichlet(0.1) filter bank
DEEPAUGMENT_SWAP_PAIRS = 5           # EDSR head: swap this many channel pairs
DEEPAUGMENT_KEEP_PROBABILITY = 0.95  # EDSR head: Bernoulli keep mask
DEEPAUGMENT_SIGN_FLIP_PROBABILITY = 0.025  # EDSR head: −1 with this probability
DEEPAUGMENT_MAX_SKIPPED_BLOCKS = 3   # EDSR: skip up to this many residual blocks
DEEPAUGMENT_LATENT_ZERO = 0.2        # CAE: zero 20% of spatial positions
DEEPAUGMENT_LATENT_NEGATE = 0.1      # CAE: negate 10% of positions
DEEPAUGMENT_LATENT_PERMUTE = 10      # CAE: permute the first 10 channels
DEEPAUGMENT_LATENT_FLIP = 5          # CAE: flip 5 random channels (or all)
DEEPAUGMENT_LATENT_FLIP_ALL = 0.5    # ... all of them with this probability (adaaug's choice)
DEEPAUGMENT_LATENT_NEAR_IDENTITY = 0.1  # CAE: identity + U(−0.1, 0.1) filter bank
DEEPAUGMENT_LATENT_SCALE = (3.0, 2.0)   # CAE: code × (3 + s·U(0, 2)), s a random sign
LR_SCALE_BATCH = 256             # the batch size at which the LR equals BASE_LR (App. E.1)

# Evaluation protocol (Section 5, App. D.1, E.2; Hendrycks & Dietterich 2019) -----------
CORRUPTION_SEVERITIES = (1, 2, 3, 4, 5)
LINF_EPSILONS = (1 / 255, 2 / 255)    # ℓ∞ radii of the robust-accuracy columns (Tables 1, 2)
L2_EPSILONS = (0.5, 1.0)             # ℓ2 radii
IMAGENET_PGD_STEPS = 100             # ImageNet: 100-step PGD with 10 restarts (App. E.2)
IMAGENET_PGD_RESTARTS = 10
PARAM_NOISE_ETAS = (0.0, 0.02, 0.04, 0.06, 0.08, 0.10)  # Table 4: ε_j ~ N(0, η‖w‖∞) (App. D.1)
PARAM_NOISE_SAMPLES = 50             # softmax averaged over 50 parameter draws (App. D.1)
