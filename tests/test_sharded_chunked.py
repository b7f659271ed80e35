"""chunked_rows: a classifier's scores chunk by chunk of class rows give autograd's values and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from facetrain.losses.base import class_matmul
from facetrain.losses.classifier.subcenter_arcface import subcenter_cosines
from facetrain.sharded.chunked import chunked_rows


def _cosines(f, w):
    return class_matmul(F.normalize(f, dim=1), F.normalize(w, dim=1), None)


def _linear(f, w, b):
    return class_matmul(f, w, None, b)


def _subcenters(f, w):
    return subcenter_cosines(f, w, None).amax(dim=2)


CASES = {"cosines": (_cosines, ((11, 6),)), "linear+bias": (_linear, ((11, 6), (11,))),
         "subcenters": (_subcenters, ((11, 3, 6),))}


def _both(fn, shapes, rows, chunk):
    """(reference, chunked): output, features' gradient and the params' gradients under one random upstream."""
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(5, 6, generator=gen, dtype=torch.float64)
    params = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    n = shapes[0][0] if rows is None else len(rows)
    upstream = torch.randn(5, n, generator=gen, dtype=torch.float64)
    results = []
    for chunked in (False, True):
        f = features.clone().requires_grad_()
        ps = [p.clone().requires_grad_() for p in params]
        if chunked:
            out = chunked_rows(fn, f, tuple(ps), rows, chunk)
        else:
            out = fn(f, *[p if rows is None else p[rows] for p in ps])
        (out * upstream).sum().backward()
        results.append((out.detach(), f.grad, [p.grad for p in ps]))
    return results


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("chunk", [1, 4, 11, None])
@pytest.mark.parametrize("sampled", [False, True])
def test_chunked_rows_give_autograds_values_and_gradients(name, chunk, sampled):
    fn, shapes = CASES[name]
    rows = torch.tensor([0, 3, 4, 9]) if sampled else None
    (out, d_f, d_p), (c_out, c_f, c_p) = _both(fn, shapes, rows, chunk)
    # the same ops per chunk; a matmul's rounding may depend on how many columns it has (gemv for one)
    torch.testing.assert_close(c_out, out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(c_f, d_f, rtol=1e-12, atol=1e-12)  # and the features' gradient sums chunks
    for ref, got in zip(d_p, c_p, strict=True):
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    if sampled:
        assert not d_p[0][[1, 2, 5, 6, 7, 8, 10]].any()  # unsampled rows: zero gradient


def test_one_chunk_is_bitwise_autograd_in_fp32():
    gen = torch.Generator().manual_seed(1)
    f0, w0 = torch.randn(8, 16, generator=gen), torch.randn(300, 16, generator=gen)
    up = torch.randn(8, 300, generator=gen)
    grads = []
    for chunked in (False, True):
        f, w = f0.clone().requires_grad_(), w0.clone().requires_grad_()
        out = chunked_rows(_cosines, f, (w,)) if chunked else _cosines(f, w)
        (out * up).sum().backward()
        grads.append((out.detach(), f.grad, w.grad))
    for ref, got in zip(*grads, strict=True):
        assert torch.equal(ref, got)


def test_a_block_without_classes_gives_empty_scores_and_zero_gradients():
    f = torch.randn(3, 4, requires_grad=True)
    w = torch.randn(6, 4, requires_grad=True)
    out = chunked_rows(_cosines, f, (w,), torch.zeros(0, dtype=torch.long))
    assert out.shape == (3, 0)
    (out.sum() + f.sum()).backward()
    assert torch.equal(w.grad, torch.zeros_like(w)) and torch.equal(f.grad, torch.ones_like(f))


def test_the_default_chunks_on_cpu_match_autograd_in_fp32():
    gen = torch.Generator().manual_seed(2)
    f0, w0 = torch.randn(6, 256, generator=gen), torch.randn(9000, 256, generator=gen)  # 9 MB: three 4 MiB chunks
    up = torch.randn(6, 9000, generator=gen)
    results = []
    for chunked in (False, True):
        f, w = f0.clone().requires_grad_(), w0.clone().requires_grad_()
        out = chunked_rows(_cosines, f, (w,)) if chunked else _cosines(f, w)
        (out * up).sum().backward()
        results.append((out.detach(), f.grad, w.grad))
    for ref, got in zip(*results, strict=True):
        torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-6)
