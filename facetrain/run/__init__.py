"""What training and evaluation share about a run: its directory, checkpoints, model, device and metrics.

Neither the trainer nor TensorBoard is imported here, so `facetrain eval` and `facetrain export` load
only what scoring a model needs.
"""

from facetrain.run.atomic import atomic_write
from facetrain.run.checkpoint import (
    capture_state,
    checkpoint_path,
    find_checkpoint,
    latest_checkpoint,
    load_checkpoint,
    resolve_checkpoint,
    restore_state,
    run_of_checkpoint,
    save_checkpoint,
)
from facetrain.run.device import pick_device
from facetrain.run.face_model import AfterHead, FaceModel
from facetrain.run.metrics_file import read_metrics, update_metrics
from facetrain.run.rank import is_main_process, rank, world_size
from facetrain.run.rebuild import (
    EMBEDDING_STAGES,
    Preprocessing,
    TrainedModel,
    build_face_model,
    load_embedder,
    preprocessing_of,
)
from facetrain.run.status_file import STATUS_NAME, STATUSES, read_status, write_status

__all__ = [
    "EMBEDDING_STAGES",
    "STATUSES",
    "STATUS_NAME",
    "AfterHead",
    "FaceModel",
    "Preprocessing",
    "TrainedModel",
    "atomic_write",
    "build_face_model",
    "capture_state",
    "checkpoint_path",
    "find_checkpoint",
    "is_main_process",
    "latest_checkpoint",
    "load_checkpoint",
    "load_embedder",
    "pick_device",
    "preprocessing_of",
    "rank",
    "read_metrics",
    "read_status",
    "resolve_checkpoint",
    "restore_state",
    "run_of_checkpoint",
    "save_checkpoint",
    "update_metrics",
    "world_size",
    "write_status",
]
