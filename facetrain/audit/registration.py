"""Whether one image is a copy of another: align them (a scale and a shift per axis) and measure what is left.

A copy cropped by a few percent and resized back moves an 8x8 thumbnail as far as another photo of the same
person does (docs/data.md: up to 0.13 against 0.03), but once the crop is undone it matches its source up to
resampling and JPEG noise, which another photo (a new pose, expression or light) does not. Both images are
brought to the smaller one's resolution (a shrunk copy is as blurred as it is), then onto one grid; four
parameters are fitted by gradient ascent on the normalized cross-correlation (NCC), each image warped onto the
other, and the residual is 1 - the better NCC. Measured on five synthetic trees with a model's face check
first: copies (shrunk to 0.6x, recompressed at quality 35, cropped 2-6% a side) <= 0.020, other photos >= 0.026.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

__all__ = ["GRID", "aligned_residuals", "residual"]

GRID = (48, 40)  # the compared resolution (height, width): a 112x96 crop's faces at about half size
_MARGIN = 3  # grid pixels left out at each border, where a warp pads with the edge's colour
_STEPS, _RATE = 60, 0.01


def _on_grid(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both images (uint8 [C, H, W]) as float [3, *GRID], first shrunk to the smaller one's size."""
    h, w = min(a.shape[1], b.shape[1]), min(a.shape[2], b.shape[2])

    def fit(x: torch.Tensor) -> torch.Tensor:
        x = x.float().div(255).expand(3, -1, -1)[None] if x.shape[0] == 1 else x.float().div(255)[None]
        x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        return F.interpolate(x, size=GRID, mode="bilinear", antialias=True, align_corners=False)[0]

    return fit(a), fit(b)


def _ncc(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[N] normalized cross-correlation of two [N, C, H, W] batches, inside the margin."""
    m = _MARGIN
    a, b = a[..., m:-m, m:-m].flatten(1), b[..., m:-m, m:-m].flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-8)


def _best_ncc(moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
    """[N] NCC of `moving` warped onto `fixed` by the fitted scale and shift of each axis (from no change)."""
    p = torch.zeros(len(moving), 4, requires_grad=True)  # x scale - 1, y scale - 1, x shift, y shift
    opt = torch.optim.Adam([p], lr=_RATE)
    best = torch.full((len(moving),), -1.0)
    for _ in range(_STEPS + 1):
        theta = torch.zeros(len(moving), 2, 3)
        theta[:, 0, 0], theta[:, 1, 1] = 1 + p[:, 0], 1 + p[:, 1]
        theta[:, 0, 2], theta[:, 1, 2] = p[:, 2], p[:, 3]
        grid = F.affine_grid(theta, list(moving.shape), align_corners=False)
        ncc = _ncc(F.grid_sample(moving, grid, mode="bilinear", padding_mode="border", align_corners=False), fixed)
        best = torch.maximum(best, ncc.detach())
        opt.zero_grad()
        (-ncc.sum()).backward()
        opt.step()
    return best


def residual(a: torch.Tensor, b: torch.Tensor) -> float:
    """1 - the NCC of two images (uint8 [C, H, W]) once aligned: near 0 for a copy, whichever is the source."""
    return float(aligned_residuals(lambda i: (a, b)[i], np.array([[0, 1]]))[0])


def aligned_residuals(image: Callable[[int], torch.Tensor], pairs: np.ndarray, batch_size: int = 256,
                      progress: bool = False) -> np.ndarray:
    """float32 [P]: `residual` of each pair (i, j) of `pairs`, the images decoded by `image(index)`."""
    out = np.zeros(len(pairs), np.float32)
    starts = range(0, len(pairs), batch_size)
    with torch.inference_mode(False), torch.enable_grad():
        for s in tqdm(starts, desc="aligning near pairs", unit="batch", disable=not progress):
            chunk = pairs[s:s + batch_size]
            decoded = {int(i): image(int(i)) for i in np.unique(chunk)}
            a, b = zip(*(_on_grid(decoded[int(i)], decoded[int(j)]) for i, j in chunk), strict=True)
            a, b = torch.stack(a), torch.stack(b)
            out[s:s + len(chunk)] = 1 - torch.maximum(_best_ncc(a, b), _best_ncc(b, a)).numpy()
    return out
