"""A causal decoder whose image-reference tokens are read through a tiny image encoder.

The vocabulary has two ranges. Ids below `n_words` are words (names, relations,
attribute values), embedded by the decoder's table. Ids from `n_words` on are
image-reference tokens, one per image of the run's fixed image bank: id n_words + i
stands for image i, and its input vector is the encoder's output for that image's
pixels instead of a learned row. The decoder then reads both alike, so one recall path
(the same blocks and the same head) answers a question about a persona whether the
persona is named or shown. Logits cover the words only: an image is never a target.

The bank is a non-persistent buffer, rebuilt from the spec with every model (a
checkpoint holds weights only), so an item stays a (T,) token sequence with next-token
targets and every token probe runs on image-queried items unchanged, while the pixels
really pass through the encoder.

Dimensions: B batch, T time, C decoder width, V word vocabulary, N images in the bank,
K encoder channels, H = W image side.
"""

from __future__ import annotations

import functools

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from core.models.sequence_model import SequenceModel, SequenceModelSpec, parameter_count
from core.spec_model import SpecModel


class ImageEncoderSpec(SpecModel):
    """The image encoder: two 3×3 convolutions, each followed by ReLU and 2×2 max-pooling,
    then a linear map to the decoder's width."""

    channels: int = Field(16, ge=1, le=256, description="Channels K of the first convolution.")


class ImageEncoder(nn.Module):
    """(M, 1, H, W) images → (M, C) vectors in the decoder's embedding space."""

    def __init__(self, spec: ImageEncoderSpec, image_size: int, width: int) -> None:
        super().__init__()
        channels = spec.channels
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, 2 * channels, 3, padding=1)
        pooled = image_size // 4
        self.project = nn.Linear(2 * channels * pooled * pooled, width)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(images)), 2)  # (M, K, H/2, W/2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (M, 2K, H/4, W/4)
        return self.project(x.flatten(1))  # (M, C)


class ImagePrefixModel(nn.Module):
    """A `SequenceModel` over words whose image-reference tokens embed through `encoder`.

    Args:
        spec:     the decoder's shape.
        encoder:  the image encoder's shape.
        n_words:  V, word ids are [0, V); image ids are [V, V + N).
        bank:     (N, 1, H, W) the run's images.
        block_size: the longest sequence T.
    """

    def __init__(
        self,
        spec: SequenceModelSpec,
        encoder: ImageEncoderSpec,
        n_words: int,
        bank: torch.Tensor,
        block_size: int,
    ) -> None:
        super().__init__()
        self.n_words = n_words
        self.decoder = SequenceModel(spec, n_words, block_size)
        self.encoder = ImageEncoder(encoder, int(bank.shape[-1]), spec.layer_width)
        self.register_buffer("bank", bank, persistent=False)  # (N, 1, H, W)

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) ids → (B, T, C): word rows from the decoder's table, image tokens through
        the encoder. Every position is computed both ways and one is kept, so the shapes
        never depend on where the images are (the batched ensemble vmaps this)."""
        is_image = idx >= self.n_words  # (B, T)
        words = self.decoder.tok_emb(idx.clamp(max=self.n_words - 1))  # (B, T, C)
        rows = (idx - self.n_words).clamp(min=0, max=self.bank.shape[0] - 1)  # (B, T)
        pixels = self.bank[rows.flatten()]  # (B·T, 1, H, W)
        images = self.encoder(pixels).view(*idx.shape, -1)  # (B, T, C)
        return torch.where(is_image.unsqueeze(-1), images, words)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids → (B, T, V) next-token logits over the words."""
        return self.decoder.head(self.decoder.hidden_states_of(self.embed(idx)))


def image_prefix_parameter_count(
    spec: SequenceModelSpec,
    encoder: ImageEncoderSpec,
    n_words: int,
    image_size: int,
    block_size: int,
) -> int:
    """Parameters of `ImagePrefixModel(spec, encoder, n_words, bank, block_size)` for a
    bank of `image_size`-pixel images, without allocating it."""
    return parameter_count(spec, n_words, block_size) + _encoder_parameters(
        encoder, image_size, spec.layer_width
    )


@functools.lru_cache(maxsize=256)
def _encoder_parameters(spec: ImageEncoderSpec, image_size: int, width: int) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in ImageEncoder(spec, image_size, width).parameters())
