"""Image augmentations for contrastive learning, written with torch alone (no torchvision).

One random affine map per image combines the random resized crop, a small
rotation and a small translation; the image is resampled once (bilinear,
``torch.nn.functional.grid_sample``), then Gaussian pixel noise is added. All
randomness comes from a ``torch.Generator``: the same seed gives the same views.

Coordinates are those of ``torch.nn.functional.affine_grid`` (normalised to
[-1, 1], x to the right, y downwards, ``align_corners=False``): the output
pixel at ``p`` samples the input at ``c + R(theta) diag(w, h) p``, with
``(w, h)`` the crop's width and height as fractions of the image side and
``c`` its centre.

Source: the augmentation pipeline of SimCLR (Chen et al. 2020,
arXiv:2002.05709, Sec. 3 and Appendix A: random crop and resize, then
photometric changes); colour distortion is left out (grey digits), a small
rotation and translation added, as is usual for MNIST.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from losslab.errors import UserError

__all__ = ["AUGMENT_DEFAULTS", "affine", "augment", "two_views"]

AUGMENT_DEFAULTS: dict[str, object] = {
    "crop_scale": (0.6, 1.0),  # area of the crop as a fraction of the image (SimCLR: 0.08..1 on ImageNet)
    "crop_ratio": (3 / 4, 4 / 3),  # aspect ratio w / h of the crop (SimCLR's, from Inception)
    "max_rotation": 15.0,  # degrees, uniform in [-15, 15]
    "max_translate": 0.1,  # fraction of the image side, uniform in [-0.1, 0.1] per axis
    "noise_std": 0.1,  # Gaussian pixel noise on the [-1, 1] scale, then clipped to [-1, 1]
}


def affine(x: Tensor, *, width: Tensor, height: Tensor, center: Tensor, rotation: Tensor) -> Tensor:
    """Resample each image through its own affine map (crop, rotation, translation).

    Parameters
    ----------
    x : (N, C, H, W) tensor
        Images.
    width, height : (N,) tensors
        Crop size as a fraction of the image width / height (1 = whole image).
    center : (N, 2) tensor
        Crop centre (x, y) in normalised coordinates ([-1, 1]; 0 = image centre).
    rotation : (N,) tensor
        Angle in degrees; a positive angle turns the content counter-clockwise
        as displayed (rows downwards): 90 equals ``torch.rot90(x, 1, (2, 3))``.

    Returns
    -------
    (N, C, H, W) tensor
        Bilinear resampling; points outside the image take the nearest border
        pixel (``padding_mode="border"``: the background of a digit stays
        background).
    """
    t = rotation.to(x.dtype) * (math.pi / 180.0)
    cos, sin = torch.cos(t), torch.sin(t)
    w, h = width.to(x.dtype), height.to(x.dtype)
    # theta = [R diag(w, h) | c], R = [[cos, -sin], [sin, cos]]
    theta = torch.stack(
        [
            torch.stack([cos * w, -sin * h, center[:, 0].to(x.dtype)], dim=1),
            torch.stack([sin * w, cos * h, center[:, 1].to(x.dtype)], dim=1),
        ],
        dim=1,
    )  # (N, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _draw(fn, shape, generator: torch.Generator | None, device: torch.device, dtype=None) -> Tensor:
    """``fn(shape)`` (torch.rand / randn) drawn on the generator's device (``device`` without one),
    moved to ``device``: the images' device computes, the generator's draws."""
    where = generator.device if generator is not None else device
    return fn(shape, generator=generator, device=where, dtype=dtype).to(device)


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator | None, device: torch.device) -> Tensor:
    return lo + (hi - lo) * _draw(torch.rand, (n,), generator, device)


def augment(
    x: Tensor,
    generator: torch.Generator | None = None,
    *,
    crop_scale: tuple[float, float] = AUGMENT_DEFAULTS["crop_scale"],  # type: ignore[assignment]
    crop_ratio: tuple[float, float] = AUGMENT_DEFAULTS["crop_ratio"],  # type: ignore[assignment]
    max_rotation: float = AUGMENT_DEFAULTS["max_rotation"],  # type: ignore[assignment]
    max_translate: float = AUGMENT_DEFAULTS["max_translate"],  # type: ignore[assignment]
    noise_std: float = AUGMENT_DEFAULTS["noise_std"],  # type: ignore[assignment]
) -> Tensor:
    """One random view of each image: random resized crop, rotation, translation, noise.

    Parameters
    ----------
    x : (N, C, H, W) tensor
        Images in [-1, 1].
    generator : torch.Generator, optional
        Source of all randomness; it draws on its own device, the warp runs on
        ``x``'s device (the same generator state gives the same views there).
    crop_scale : (lo, hi)
        Crop area as a fraction of the image, uniform in [lo, hi], 0 < lo <= hi <= 1.
    crop_ratio : (lo, hi)
        Aspect ratio w / h, log-uniform in [lo, hi]; width and height are
        capped at the whole image.
    max_rotation : float
        Degrees; the angle is uniform in [-max_rotation, max_rotation].
    max_translate : float
        Fraction of the image side; the shift is uniform in +-max_translate per
        axis, added to a crop centre drawn uniformly where the crop fits.
    noise_std : float
        Standard deviation of the Gaussian pixel noise (>= 0); the result is
        clipped to [-1, 1].

    Returns
    -------
    (N, C, H, W) float32 tensor in [-1, 1].

    Raises
    ------
    UserError
        Parameters out of range, or ``x`` not 4-D.
    """
    if x.ndim != 4:
        raise UserError(f"augmentations need images (N, C, H, W), got shape {tuple(x.shape)}")
    lo, hi = crop_scale
    if not 0.0 < lo <= hi <= 1.0:
        raise UserError(f"crop_scale must satisfy 0 < lo <= hi <= 1, got {crop_scale}")
    if not 0.0 < crop_ratio[0] <= crop_ratio[1]:
        raise UserError(f"crop_ratio must satisfy 0 < lo <= hi, got {crop_ratio}")
    if max_rotation < 0 or max_translate < 0 or noise_std < 0:
        raise UserError("max_rotation, max_translate and noise_std must be >= 0")
    n, dev = x.shape[0], x.device
    area = _uniform(n, lo, hi, generator, dev)
    log_ratio = _uniform(n, math.log(crop_ratio[0]), math.log(crop_ratio[1]), generator, dev)
    ratio = torch.exp(log_ratio)
    w = torch.sqrt(area * ratio).clamp(max=1.0)
    h = torch.sqrt(area / ratio).clamp(max=1.0)
    # Crop centre where the crop fits inside the image (|c| <= 1 - size), plus a shift.
    c = (_draw(torch.rand, (n, 2), generator, dev) * 2 - 1) * torch.stack([1 - w, 1 - h], dim=1)
    c = c + (_draw(torch.rand, (n, 2), generator, dev) * 2 - 1) * (2.0 * max_translate)
    angle = _uniform(n, -max_rotation, max_rotation, generator, dev)
    out = affine(x, width=w, height=h, center=c, rotation=angle)
    if noise_std > 0:
        out = out + noise_std * _draw(torch.randn, out.shape, generator, dev, out.dtype)
    return out.clamp(-1.0, 1.0)


def two_views(x: Tensor, generator: torch.Generator | None = None, **kwargs) -> tuple[Tensor, Tensor]:
    """Two independent augmented views of each image (the positive pairs of SimCLR).

    Parameters
    ----------
    x : (N, C, H, W) tensor
    generator : torch.Generator, optional
    **kwargs
        Passed to :func:`augment`.

    Returns
    -------
    (v1, v2) : two (N, C, H, W) tensors; row i of both comes from image i.
    """
    return augment(x, generator, **kwargs), augment(x, generator, **kwargs)
