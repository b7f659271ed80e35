"""What the report's analysis plots read from a run's checkpoint: its config, backbone, class weights and bias,
its training data, and embeddings of a sample of that data (Ge n.d., §3.2-3.5; Ranjan et al. 2017, fig. 1)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import open_dict

from facetrain.models.trained_run import TrainedRun
from facetrain.report.runs import RunRecord
from facetrain.run.checkpoint import checkpoint_path

__all__ = ["AnalysedRun", "sample_indices", "trained_runs"]


@dataclass
class AnalysedRun(TrainedRun):
    """One run of a report with its last checkpoint (a report over many runs builds only what its plots ask for)."""

    record: RunRecord | None = None

    @property
    def label(self) -> str:
        """`softmax (job 0)`: the loss Hydra recorded and where the run is."""
        loss = self.record.choices.get("loss") or str(self.cfg.loss.get("_target_", "")).rsplit(".", 1)[-1]
        where = f"job {self.record.name}" if self.record.name.isdigit() else self.record.name
        extra = "" if self.cfg.loss.get("bias", None) is None else f", bias={str(self.cfg.loss.bias).lower()}"
        return f"{loss}{extra} ({where})"

    def _class_tensors(self) -> list[tuple[str, torch.Tensor]]:
        n = int(self.state.get("num_classes") or 0)
        return [(k, v) for k, v in self.state["model"].get("loss", {}).items()
                if isinstance(v, torch.Tensor) and v.ndim >= 1 and v.shape[0] == n and n > 0]

    def class_weights(self) -> torch.Tensor | None:
        """The [C, D] class weight matrix as stored (the raw parameter, before any normalization in the loss)."""
        return next((v.float() for _, v in self._class_tensors() if v.ndim == 2), None)

    def normalizes_weights(self) -> bool:
        """Whether the loss divides each W_j by its norm before the logits (the margin-softmax family, NormFace
        unless `normalize=features`): then the raw parameter's norm is invisible to the loss."""
        from facetrain.losses.classifier.margin_softmax import MarginSoftmaxLoss

        cls = self._loss_class
        return (cls is not None and issubclass(cls, MarginSoftmaxLoss)
                and self.cfg.loss.get("normalize", "both") != "features")

    def trained_with(self, loss_class: type) -> bool:
        """Whether the run's loss is `loss_class` or a subclass of it (False when this facetrain cannot import it)."""
        return self._loss_class is not None and issubclass(self._loss_class, loss_class)

    @cached_property
    def _loss_class(self) -> type | None:
        """The run's loss class; None, said in one line, when this facetrain cannot import it (renamed or removed),
        so a plot drawing its weights as stored is not silently mislabelled."""
        from hydra.utils import get_class

        target = str(self.cfg.loss.get("_target_", ""))
        try:
            return get_class(target)
        except Exception as err:  # hydra raises ImportError or ValueError, wrapped differently across versions
            print(f"report: {self.label}: its loss {target!r} cannot be imported here ({type(err).__name__}); "
                  "its class weights are drawn as stored, as if the loss did not normalize them")
            return None

    def class_bias(self) -> torch.Tensor | None:
        """The classifier's [C] bias, None for a loss without one (loss.bias=false, NormFace, ...)."""
        return next((v.float() for k, v in self._class_tensors() if v.ndim == 1 and k.endswith("bias")), None)

    def dataset(self, **changes):
        """The run's training dataset as its config built it (no augmentation: that lives in the loader)."""
        data = self.cfg.data.dataset.copy()
        with open_dict(data):
            for key, value in changes.items():
                if key in data:
                    data[key] = value
            if "progress" in data or str(data.get("_target_", "")).endswith("FaceFolder"):
                data["progress"] = False
        return instantiate(data)

    def backbone(self) -> torch.nn.Module:
        return self.face_model(head=False).backbone

    @torch.no_grad()
    def embed(self, dataset, indices: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """(backbone outputs [N, D] before any training head, labels [N]) of `dataset[indices]`."""
        net, feats, labels = self.backbone(), [], []
        for start in range(0, len(indices), batch_size):
            items = [dataset[int(i)] for i in indices[start:start + batch_size]]
            feats.append(net(torch.stack([x for x, _ in items])).float().numpy())
            labels += [int(y) for _, y in items]
        return np.concatenate(feats), np.array(labels)


def trained_runs(runs: list[RunRecord]) -> tuple[list[AnalysedRun], list[str]]:
    """The runs that left checkpoints/last.pt, and one note per run that did not (failed jobs, eval-only dirs)."""
    out, notes = [], []
    for run in runs:
        path = checkpoint_path(run.dir)
        if not path.is_file():
            notes.append(f"{run.name} has no {path.relative_to(run.dir)}: left out")
            continue
        opened = TrainedRun.open(path)
        out.append(AnalysedRun(opened.path, opened.state, run))
    return out, notes


def sample_indices(n: int, size: int, seed: int = 0) -> np.ndarray:
    """`size` indices of range(n) drawn without replacement, sorted (all of them when n <= size)."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))
