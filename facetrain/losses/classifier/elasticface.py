"""ElasticFaceLoss: ArcFace's or CosFace's margin, drawn for each sample at each iteration from N(m, σ²)
(Boutros et al. 2022, ElasticFace; the released `utils/losses.py` of fdbtrs/ElasticFace).

The draws come from a generator seeded by (the run's seed, the iteration), sample i of the global batch taking
the i-th draw: a resumed run draws the same margins, and every rank of a sharded classifier, or of a
data-parallel run, gives each sample the margin one process gives it.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from facetrain.distributed.collectives import sum_over_ranks
from facetrain.distributed.rank import rank, world_size
from facetrain.errors import FacetrainError
from facetrain.losses.classifier.margin_softmax import MarginSoftmaxLoss
from facetrain.sharded.block_softmax import at_target

__all__ = ["ELASTIC_VARIANTS", "ElasticFaceLoss", "plus_order"]

# variant: (m, σ, σ of the + variant), the released config.py's (ElasticFace-Arc, -Cos, -Arc+, -Cos+)
ELASTIC_VARIANTS = {"arc": (0.5, 0.05, 0.0175), "cos": (0.35, 0.05, 0.02)}


def plus_order(margins: torch.Tensor, target_cos: torch.Tensor) -> torch.Tensor:
    """ElasticFace+'s assignment as released: the margins sorted ascending, sample i taking the one at the
    position of the i-th largest target cosine (`margin[idicate_cosie]` in `utils/losses.py`).

    Args:
        margins: [N] the drawn margins.
        target_cos: [N] each sample's cosine to its class.

    Returns:
        [N] each sample's margin.
    """
    order = target_cos.argsort(descending=True, stable=True)
    return margins.sort().values[order]


class ElasticFaceLoss(MarginSoftmaxLoss):
    """ElasticFace-Arc: cos(θ_y + m_i); ElasticFace-Cos: cos θ_y − m_i; with m_i ~ N(m, σ²) per sample.

    Defaults are the paper's: s = 64; arc m = 0.5, cos m = 0.35; σ = 0.05, and for the + variant (margins
    matched to the samples by their target cosine) σ = 0.0175 (arc) and 0.02 (cos). As released, the arc
    variant has no fallback past θ + m > π (ArcFace's has one).

    Args:
        variant: `arc` or `cos`.
        margin: m, the margins' mean (None: the variant's default).
        sigma: σ, their standard deviation (None: the variant's default, with or without plus).
        plus: ElasticFace+ (`plus_order`).
        **kwargs: embedding_dim, num_classes, scale and the rest of `MarginSoftmaxLoss`.
    """

    term_name = "elasticface"

    def __init__(self, embedding_dim: int, num_classes: int, variant: str = "arc", margin: float | None = None,
                 sigma: float | None = None, plus: bool = False, scale: float = 64.0, **kwargs):
        if variant not in ELASTIC_VARIANTS:
            raise FacetrainError(f"loss.variant={variant!r} is not known; use one of {', '.join(ELASTIC_VARIANTS)}")
        super().__init__(embedding_dim, num_classes, scale=scale, **kwargs)
        m, s, s_plus = ELASTIC_VARIANTS[variant]
        self.variant, self.plus = variant, bool(plus)
        self.margin = float(m if margin is None else margin)
        self.sigma = float((s_plus if self.plus else s) if sigma is None else sigma)
        if self.sigma < 0:
            raise FacetrainError(f"loss.sigma={sigma} must be >= 0 (the margins' standard deviation)")
        self._margins: torch.Tensor | None = None  # this forward's [B, 1] margins, for `target_cosine`

    def draw_margins(self, count: int, device: torch.device) -> torch.Tensor:
        """The iteration's margins for a global batch of `count` samples, m + σ z with z from a generator
        seeded by (`classes.seed`, `classes.iteration`), which the trainer sets before each step."""
        seed = ((self.classes.seed * 1_000_003 + self.classes.iteration) * 1_000_037 + 0x5EED) % (1 << 63)
        generator = torch.Generator(device=device).manual_seed(seed)
        return self.margin + self.sigma * torch.randn(count, generator=generator, device=device,
                                                      dtype=self.weight.dtype)

    def batch_margins(self, cos: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """[B, 1] the margin of each row of the batch this block sees.

        On the block path (sharded or sampled classes) the rows are the gathered global batch; without it,
        under data parallelism, this rank's share of it, so the draw is the global batch's and this rank
        takes its rows. ElasticFace+ ranks the samples by their target cosine over the global batch.
        """
        block, ranks = self.classes.active, world_size()
        total, own = cos.shape[0], slice(None)
        if not block and ranks > 1:
            total, own = cos.shape[0] * ranks, slice(rank() * cos.shape[0], (rank() + 1) * cos.shape[0])
        margins = self.draw_margins(total, cos.device)
        if self.plus:
            margins = plus_order(margins, self._global_target_cosines(cos, target, block, ranks))
        return margins[own].view(-1, 1)

    @torch.no_grad()
    def _global_target_cosines(self, cos: torch.Tensor, target: torch.Tensor, block: bool, ranks: int) -> torch.Tensor:
        """[global batch] each sample's cosine to its class, whichever rank holds the class (a collective)."""
        if block:
            mine = at_target(cos, target)  # 0 where another rank's block holds the class
            return sum_over_ranks(mine) if self.classes.world_size > 1 else mine
        mine = cos.gather(1, target.view(-1, 1)).squeeze(1)
        if ranks <= 1:
            return mine
        parts = [torch.empty_like(mine) for _ in range(ranks)]
        dist.all_gather(parts, mine.contiguous())
        return torch.cat(parts)

    def margin_logits(self, cos: torch.Tensor, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self._margins = self.batch_margins(cos, target)
        try:
            return super().margin_logits(cos, features, target)
        finally:
            self._margins = None

    def target_cosine(self, cos_y: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        m = self._margins
        if self.variant == "cos":
            return cos_y - m
        sin_y = (1.0 - cos_y * cos_y).clamp_min(1e-12).sqrt()  # away from sin = 0, where d sqrt / d x is infinite
        return cos_y * torch.cos(m) - sin_y * torch.sin(m)
