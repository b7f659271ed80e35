"""data.num_workers=auto: one loader worker per CPU of this rank's share, less the rank's own."""

import os

import pytest

from facetrain.data.loader_workers import cpus_per_rank, loader_workers
from facetrain.errors import FacetrainError


@pytest.mark.parametrize("cpus, local_world, workers", [(16, None, 15), (16, "4", 3), (8, "8", 0), (3, "2", 0),
                                                        (1, None, 0)])
def test_auto_counts_this_ranks_share_of_the_affinity(cpus, local_world, workers, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    if local_world is None:
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", local_world)
    assert loader_workers("auto") == workers == cpus_per_rank() - 1


def test_numbers_pass_and_nonsense_is_one_line():
    assert loader_workers(0) == 0 and loader_workers(6) == 6
    for bad in (-1, "many", True, 2.5):
        with pytest.raises(FacetrainError, match="data.num_workers=.* must be auto or an integer >= 0"):
            loader_workers(bad)
