"""A small 1-D CNN that classifies spectra resampled to a common log-wavelength grid.

In the spirit of Škoda et al. (2020): a few convolution + pooling stages find line-like
features wherever redshift has moved them, a global max/mean pool makes the representation
independent of position, and a dropout-regularised linear head gives class logits. Dropout sits
only in the head, so that Monte-Carlo dropout (BALD) can compute the convolutional embedding once
and sample only the cheap head ``T`` times (:meth:`SpectraCNN.embed` / ``head``) — exact MC
dropout for this architecture at little more than the cost of one forward pass.

The network is deliberately small (≈ 7 k parameters at the defaults) so that scoring a pool of
tens of thousands of spectra and retraining after every batch of labels both take seconds on a
CPU; the same code runs on CUDA when the tensors are moved there.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["SpectraCNN"]


class SpectraCNN(nn.Module):
    """1-D convolutional classifier for spectra.

    Parameters
    ----------
    n_classes : int
        Number of output classes (logits).
    channels : sequence of int
        Output channels of each convolution stage; every stage halves the length
        (max-pool 2).
    kernel_size : int
        Convolution kernel width in pixels (odd; "same" padding).
    dropout : float
        Dropout probability in the head; also the MC-dropout rate.
    in_channels : int
        Input channels (1 for flux; 2 when an inverse-variance channel is supplied).

    Notes
    -----
    Input shape is ``(batch, n_pixels)`` or ``(batch, in_channels, n_pixels)``; any length
    works (the global pooling removes the dependence), but a model is meaningful only on the
    grid it was trained on.
    """

    def __init__(
        self,
        n_classes: int,
        *,
        channels: Sequence[int] = (8, 16, 32),
        kernel_size: int = 7,
        dropout: float = 0.25,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"SpectraCNN: n_classes must be >= 2, got {n_classes}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"SpectraCNN: kernel_size must be odd and >= 1, got {kernel_size}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"SpectraCNN: dropout must be in [0, 1), got {dropout}")
        self.n_classes = int(n_classes)
        self.in_channels = int(in_channels)
        layers: list[nn.Module] = []
        previous = self.in_channels
        for width in channels:
            layers += [
                nn.Conv1d(previous, int(width), kernel_size, padding=kernel_size // 2),
                nn.ReLU(inplace=True),
                nn.MaxPool1d(2),
            ]
            previous = int(width)
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(2 * previous, 32),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(32, self.n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of shape ``(batch, n_classes)``."""
        return self.head(self.embed(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The deterministic part: pooled convolutional features ``(batch, 2 * channels[-1])``."""
        if x.dim() == 2:
            x = x.unsqueeze(1)
        if x.dim() != 3 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"SpectraCNN expected input (batch, n_pixels) or (batch, {self.in_channels}, "
                f"n_pixels), got {tuple(x.shape)}"
            )
        h = self.features(x)
        # max pool finds a line wherever redshift put it; mean pool carries the continuum shape
        return torch.cat([h.amax(dim=-1), h.mean(dim=-1)], dim=1)
