"""VQ-VAE with an EMA codebook (van den Oord et al. 2017), sized as in AdA App. E.6.

128 base filters, a 2-layer residual stack of 32 filters, 512 codes of dimension
64, commitment cost 0.25, codebook updated by exponential moving averages (decay
0.99). Maps a [0, 1] image ``N×3×H×W`` (H, W divisible by 4) to the same size.

Parameter count: 662,723 trainable conv parameters; the codebook and its EMA
statistics are buffers (they are not trained by gradients, and AdA does not
perturb them). The paper's 762,053 counts the EMA state of the Sonnet
implementation too: 662,723 + 3 × 512·64 (codebook, EMA average and its debiasing
copy) + 2 × 512 (cluster sizes, same) + 2 (step counters) = 762,053.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NUM_CODES = 512
CODE_DIM = 64
COMMITMENT_COST = 0.25
EMA_DECAY = 0.99
CIFAR10_PIXEL_VARIANCE = 0.063  # variance of CIFAR-10 pixel values in [0, 1]
DEAD_CODE_USAGE = 0.03  # EMA usage (vectors per batch) below which a code is restarted


class ResidualStack(nn.Module):
    """``layers`` × (ReLU → 3×3 conv to ``hidden`` → ReLU → 1×1 conv back), each residual."""

    def __init__(self, channels: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.convs3 = nn.ModuleList(nn.Conv2d(channels, hidden, 3, padding=1) for _ in range(layers))
        self.convs1 = nn.ModuleList(nn.Conv2d(hidden, channels, 1) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c3, c1 in zip(self.convs3, self.convs1):
            x = x + c1(F.relu(c3(F.relu(x))))
        return F.relu(x)


class EMAQuantizer(nn.Module):
    """Nearest-code vector quantiser with EMA codebook updates (in training mode only).

    Forward returns the quantised tensor with a straight-through gradient; the
    commitment loss of the last call is kept in ``self.commitment_loss``.
    """

    def __init__(self, num_codes: int = NUM_CODES, dim: int = CODE_DIM, decay: float = EMA_DECAY,
                 eps: float = 1e-5) -> None:
        super().__init__()
        self.decay, self.eps = decay, eps
        self.register_buffer("codebook", torch.randn(num_codes, dim))
        self.register_buffer("ema_cluster_size", torch.zeros(num_codes))
        self.register_buffer("ema_sum", self.codebook.clone())
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self.commitment_loss = torch.zeros(())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        n, c, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, c)
        dist = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.t()
                + self.codebook.pow(2).sum(1))
        idx = dist.argmin(1)
        q = self.codebook[idx]
        if self.training:
            self._ema_update(flat.detach(), idx)
            self.commitment_loss = F.mse_loss(flat, q.detach())
        q = flat + (q - flat).detach()
        return q.reshape(n, h, w, c).permute(0, 3, 1, 2)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, idx: torch.Tensor) -> None:
        """EMA codebook update; codes unused for long are restarted on random encoder outputs.

        Restarting dead codes (and initialising the codebook from the first batch) is the
        usual guard against codebook collapse; the paper does not say how it avoided it.
        """
        k = self.codebook.shape[0]
        if not bool(self.initialized):
            pick = torch.randint(len(flat), (k,), device=flat.device)
            self.codebook.copy_(flat[pick])
            self.ema_sum.copy_(flat[pick])
            self.ema_cluster_size.fill_(1.0)
            self.initialized.fill_(True)
            return
        onehot = F.one_hot(idx, self.codebook.shape[0]).to(flat.dtype)
        self.ema_cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(onehot.t() @ flat, alpha=1 - self.decay)
        total = self.ema_cluster_size.sum()
        size = (self.ema_cluster_size + self.eps) / (total + self.codebook.shape[0] * self.eps) * total
        self.codebook.copy_(self.ema_sum / size.unsqueeze(1))
        dead = self.ema_cluster_size < DEAD_CODE_USAGE
        if bool(dead.any()):
            pick = torch.randint(len(flat), (int(dead.sum()),), device=flat.device)
            self.codebook[dead] = flat[pick]
            self.ema_sum[dead] = flat[pick]
            self.ema_cluster_size[dead] = 1.0


class VQVAE(nn.Module):
    """VQ-VAE corruption network 'vqvae'."""

    in_channels = 3

    def __init__(self, hidden: int = 128, residual_hidden: int = 32, residual_layers: int = 2,
                 num_codes: int = NUM_CODES, code_dim: int = CODE_DIM) -> None:
        super().__init__()
        self.config = {"hidden": hidden, "residual_hidden": residual_hidden,
                       "residual_layers": residual_layers, "num_codes": num_codes, "code_dim": code_dim}
        self.enc1 = nn.Conv2d(3, hidden // 2, 4, stride=2, padding=1)
        self.enc2 = nn.Conv2d(hidden // 2, hidden, 4, stride=2, padding=1)
        self.enc3 = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.enc_res = ResidualStack(hidden, residual_hidden, residual_layers)
        self.pre_vq = nn.Conv2d(hidden, code_dim, 1)
        self.quantizer = EMAQuantizer(num_codes, code_dim)
        self.dec1 = nn.Conv2d(code_dim, hidden, 3, padding=1)
        self.dec_res = ResidualStack(hidden, residual_hidden, residual_layers)
        self.dec_up1 = nn.ConvTranspose2d(hidden, hidden // 2, 4, stride=2, padding=1)
        self.dec_up2 = nn.ConvTranspose2d(hidden // 2, 3, 4, stride=2, padding=1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.enc1(x - 0.5))
        h = F.relu(self.enc2(h))
        return self.pre_vq(self.enc_res(self.enc3(h)))

    def decode(self, q: torch.Tensor) -> torch.Tensor:
        h = self.dec_res(self.dec1(q))
        return self.dec_up2(F.relu(self.dec_up1(h))) + 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"VQVAE needs H and W divisible by 4, got {tuple(x.shape[-2:])}")
        return self.decode(self.quantizer(self.encode(x)))

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standard VQ-VAE loss (van den Oord et al. 2017, Eq. 3, codebook term replaced by EMA).

        Reconstruction MSE divided by the data variance (a Gaussian likelihood of fixed
        scale, as in the Sonnet/DeepMind example) + β · commitment. Returns (loss, recon).
        """
        recon = self(x)
        return (F.mse_loss(recon, x) / CIFAR10_PIXEL_VARIANCE
                + COMMITMENT_COST * self.quantizer.commitment_loss), recon
