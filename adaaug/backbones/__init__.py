"""Corruption networks: EDSR, CAE, VQ-VAE, U-Net (AdA paper, App. E.6) and a registry."""
from functools import partial

from .cae import CAE
from .edsr import EDSR
from .registry import BackboneSpec, available_backbones, backbone_spec, build_backbone, register_backbone
from .unet import UNet
from .vqvae import VQVAE

#: The paper's four backbones, in the order of its tables.
PAPER_BACKBONES = ("unet", "vqvae", "edsr", "cae")

register_backbone("edsr", EDSR)
register_backbone("edsr-down", partial(EDSR, mode="downsample"), multiple_of=2)
register_backbone("cae", CAE, multiple_of=4)
register_backbone("vqvae", VQVAE, multiple_of=4)
register_backbone("unet", UNet, multiple_of=4)

__all__ = ["CAE", "EDSR", "UNet", "VQVAE", "BackboneSpec", "PAPER_BACKBONES", "available_backbones",
           "backbone_spec", "build_backbone", "register_backbone"]
