"""Published corruption networks mapped onto adaaug's backbones (AdA paper, App. E.6).

The AdA paper takes its EDSR and CAE from DeepAugment, which published them as PyTorch pickles:

- EDSR: EDSR-PyTorch's baseline checkpoints (``edsr_baseline_x2-1bc95232.pt``,
  ``edsr_baseline_x4-6b446fab.pt``; DeepAugment's ``EDSR_Weights/edsr_baseline_x4.pt``): a plain
  state dict of 76 tensors at ×2, 78 at ×4, for images in 0–255, with the DIV2K mean held in two
  frozen 1×1 convolutions ``sub_mean`` / ``add_mean``.
- CAE: DeepAugment's ``CAE_Weights/model_final.state``, a state dict of 42 tensors named after its
  ``nn.Sequential`` blocks (``e_conv_1.1``, ``e_block_1.4``, ``d_up_conv_3.3``, ...).

:func:`read_checkpoint` reads such a file with ``torch.load(weights_only=True)`` (no code in the file
runs) and :func:`convert_published` maps it onto :class:`~adaaug.backbones.EDSR` /
:class:`~adaaug.backbones.CAE`, in the spirit of timm's ``checkpoint_filter_fn``: every key and shape
is checked, EDSR's mean shift is checked to be the identity with bias ∓255·mean and dropped (the
network subtracts and adds the mean itself), and EDSR's biases are divided by 255, so that the
converted network maps [0, 1] images exactly as the published one maps 0–255 images:
``EDSR_adaaug(x) = EDSR_published(255·x) / 255``. Anything else (another EDSR size or scale, a
renamed or missing key, a truncated file) is refused with a ``ValueError`` naming what differs.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from typing import Any, Mapping

import torch

from .cae import CAE
from .edsr import DIV2K_RGB_MEAN, EDSR

#: Backbone names whose published checkpoints :func:`convert_published` reads.
PUBLISHED_FORMATS = ("edsr", "edsr-down", "cae")

# EDSR-PyTorch's baseline (Lim et al. 2017): 16 residual blocks of 64 features, res_scale 1.
EDSR_BASELINE_BLOCKS = 16
EDSR_BASELINE_FEATURES = 64
EDSR_RGB_RANGE = 255.0
_MEAN_TOLERANCE = 1e-3


def read_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A PyTorch checkpoint's state dict, read with ``torch.load(weights_only=True)`` on the CPU.

    Accepts a plain state dict, one wrapped as ``{"state_dict": ...}`` / ``{"model": ...}``, and keys
    prefixed ``module.`` (``nn.DataParallel``); returns ``{name: tensor}``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is truncated, not a PyTorch checkpoint, holds Python objects other than
            tensors (``weights_only`` refuses them), or is not a mapping of names to tensors.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(f"{path} holds Python objects other than tensors, which adaaug does not load "
                         f"(torch.load(weights_only=True) refused it: {str(err).splitlines()[0]}); pass the "
                         f"published file itself, or a plain state dict saved with torch.save(model.state_dict())"
                         ) from err
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError) as err:
        raise ValueError(f"cannot read {path} as a PyTorch checkpoint ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else 'no detail'}); the file is truncated or "
                         f"not a checkpoint: download it again") from err
    if isinstance(obj, Mapping) and len(obj) == 1 and next(iter(obj)) in ("state_dict", "model"):
        obj = next(iter(obj.values()))
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a state dict (a mapping of names to tensors)")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{path} is not a state dict: entries {bad[:3]} are not tensors")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def convert_published(name: str, state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor],
                                                                            dict[str, Any], str]:
    """Map a published state dict onto adaaug's backbone ``name``.

    Args:
        name: ``"edsr"`` / ``"edsr-down"`` (EDSR-PyTorch baseline, ×2 or ×4, the scale read from the
            file) or ``"cae"`` (DeepAugment's CAE).
        state: the published state dict (:func:`read_checkpoint`).

    Returns:
        ``(adaaug_state, config, conversion)``: float32 contiguous tensors that load strictly into
        ``build_backbone(name, **config)``, the config (``{"num_blocks", "features", "scale"}`` for
        EDSR, ``{"latent_channels"}`` for CAE), and a one-line description of the conversion.

    Raises:
        ValueError: ``name`` has no published format, or ``state`` is not that format (the message
            names the missing, unexpected or misshapen keys, the scale or the mean shift).
    """
    if name in ("edsr", "edsr-down"):
        return _convert_edsr(state)
    if name == "cae":
        return _convert_cae(state)
    raise ValueError(f"no published checkpoint format is known for backbone {name!r}; "
                     f"known: {', '.join(PUBLISHED_FORMATS)}")


def _check_keys(state: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]], what: str) -> None:
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise ValueError(f"not {what}: missing keys {missing[:6]}{' …' * (len(missing) > 6)}, unexpected keys "
                         f"{unexpected[:6]}{' …' * (len(unexpected) > 6)}")
    wrong = [f"{k} {tuple(state[k].shape)} (expected {shape})" for k, shape in expected.items()
             if tuple(state[k].shape) != shape]
    if wrong:
        raise ValueError(f"not {what}: tensors of another shape: {'; '.join(wrong[:4])}")
    nonfinite = [k for k in expected if not torch.isfinite(state[k]).all()]
    if nonfinite:
        raise ValueError(f"{what} holds NaN or infinite values in {nonfinite[:4]}; the file is damaged")


# ---- EDSR -----------------------------------------------------------------------------------------------

def _edsr_map(num_blocks: int, scale: int) -> dict[str, str]:
    """Published EDSR key prefix → adaaug's."""
    names = {"head.0": "head", f"body.{num_blocks}": "body_tail", "tail.0.0": "upsample", "tail.1": "tail"}
    for i in range(num_blocks):
        names[f"body.{i}.body.0"] = f"body.{i}.conv1"
        names[f"body.{i}.body.2"] = f"body.{i}.conv2"
    if scale == 4:
        names["tail.0.2"] = "upsample2"
    return names


def _edsr_scale(state: Mapping[str, torch.Tensor]) -> int:
    """The scale of an EDSR-PyTorch checkpoint, from its upsampler's keys and shapes."""
    first = state.get("tail.0.0.weight")
    if first is None:
        raise ValueError("not an EDSR-PyTorch checkpoint: it has no upsampler 'tail.0.0.weight'")
    ratio = first.shape[0] // max(first.shape[1], 1)
    convs = sum(1 for k in state if k.startswith("tail.0.") and k.endswith(".weight"))
    if ratio == 4 and convs == 1:
        return 2
    if ratio == 4 and convs == 2:
        return 4
    scale = {9: "3"}.get(ratio, "unknown")
    raise ValueError(f"EDSR checkpoint of scale {scale} (upsampler {convs} conv(s) of {tuple(first.shape)}); adaaug "
                     f"reads the baseline ×2 and ×4 networks (edsr_baseline_x2, edsr_baseline_x4)")


def _check_mean_shift(state: Mapping[str, torch.Tensor]) -> None:
    mean = torch.tensor(DIV2K_RGB_MEAN, dtype=torch.float64) * EDSR_RGB_RANGE
    eye = torch.eye(3, dtype=torch.float64).view(3, 3, 1, 1)
    for key, sign in (("sub_mean", -1.0), ("add_mean", 1.0)):
        w, b = state[f"{key}.weight"].double(), state[f"{key}.bias"].double()
        if not torch.allclose(w, eye, atol=1e-6):
            raise ValueError(f"EDSR checkpoint's {key}.weight is not the identity (std ≠ 1); adaaug reads "
                             f"EDSR-PyTorch's baseline networks, whose mean shift only adds or subtracts the mean")
        if not torch.allclose(b, sign * mean, atol=_MEAN_TOLERANCE * EDSR_RGB_RANGE):
            raise ValueError(f"EDSR checkpoint's {key}.bias is {[round(v, 3) for v in b.tolist()]}, not "
                             f"{sign:+.0f}·255·DIV2K mean {[round(v, 3) for v in (sign * mean).tolist()]}: it "
                             f"was trained for another input range or mean, so it would not compute the "
                             f"published network's function on [0, 1] images")


def _convert_edsr(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, Any], str]:
    scale = _edsr_scale(state)
    head = state.get("head.0.weight")
    blocks = sum(1 for k in state if k.startswith("body.") and k.endswith(".body.0.weight"))
    features = head.shape[0] if head is not None else None
    if (blocks, features) != (EDSR_BASELINE_BLOCKS, EDSR_BASELINE_FEATURES):
        raise ValueError(f"EDSR checkpoint with {blocks} residual blocks of {features} features; adaaug reads the "
                         f"baseline network ({EDSR_BASELINE_BLOCKS} blocks of {EDSR_BASELINE_FEATURES} features, "
                         f"edsr_baseline_x2/x4); the larger EDSR scales its residuals by 0.1, which its "
                         f"checkpoint does not record")
    config = {"num_blocks": blocks, "features": features, "scale": scale}
    reference = EDSR(**config).state_dict()
    names = _edsr_map(blocks, scale)
    expected = {"sub_mean.weight": (3, 3, 1, 1), "sub_mean.bias": (3,), "add_mean.weight": (3, 3, 1, 1),
                "add_mean.bias": (3,)}
    for src, dst in names.items():
        for part in ("weight", "bias"):
            expected[f"{src}.{part}"] = tuple(reference[f"{dst}.{part}"].shape)
    _check_keys(state, expected, f"an EDSR-PyTorch baseline ×{scale} checkpoint")
    _check_mean_shift(state)
    out = {}
    for src, dst in names.items():
        out[f"{dst}.weight"] = state[f"{src}.weight"].to(torch.float32).contiguous()
        out[f"{dst}.bias"] = (state[f"{src}.bias"].double() / EDSR_RGB_RANGE).to(torch.float32).contiguous()
    conversion = (f"EDSR-PyTorch baseline ×{scale} ({len(state)} tensors, images in 0–255) → adaaug EDSR on [0, 1]: "
                  f"keys renamed, mean shift checked (identity, bias ∓255·DIV2K mean) and dropped, every conv bias "
                  f"divided by 255")
    return out, config, conversion


# ---- CAE ------------------------------------------------------------------------------------------------

def _cae_map() -> dict[str, str]:
    """DeepAugment's CAE key prefix → adaaug's."""
    names = {"e_conv_1.1": "enc1", "e_conv_2.1": "enc2", "e_conv_3.0": "enc_out", "d_up_conv_1.0": "dec1",
             "d_up_conv_1.3": "dec_up1", "d_up_conv_2.0": "dec2", "d_up_conv_2.3": "dec_up2",
             "d_up_conv_3.0": "dec3", "d_up_conv_3.3": "dec_out"}
    for k in range(3):
        for side, ours in (("e", "enc"), ("d", "dec")):
            names[f"{side}_block_{k + 1}.1"] = f"{ours}_blocks.{k}.conv1"
            names[f"{side}_block_{k + 1}.4"] = f"{ours}_blocks.{k}.conv2"
    return names


def _convert_cae(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, Any], str]:
    if any(k.startswith(("enc1.", "enc_blocks.")) for k in state):
        raise ValueError("this is an adaaug CAE state dict, not DeepAugment's checkpoint: adaaug's own weights are "
                         "safetensors files, loaded as they are")
    config = {"latent_channels": 32}
    reference = CAE(**config).state_dict()
    names = _cae_map()
    expected = {f"{src}.{part}": tuple(reference[f"{dst}.{part}"].shape)
                for src, dst in names.items() for part in ("weight", "bias")}
    _check_keys(state, expected, "DeepAugment's CAE checkpoint (model_final.state)")
    out = {f"{dst}.{part}": state[f"{src}.{part}"].to(torch.float32).contiguous()
           for src, dst in names.items() for part in ("weight", "bias")}
    conversion = ("DeepAugment CAE (42 tensors, cae_32x32x32_zero_pad_bin) → adaaug CAE: keys renamed from the "
                  "nn.Sequential indices, values unchanged (same function on [0, 1] images)")
    return out, config, conversion
