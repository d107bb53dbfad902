"""The contract every augmentation op keeps, checked on a small batch before anything trains.

An op is `(images, generator, **params) -> images` on a float batch (B, 3, H, W) in [0, 1]. What the
trainer, the pairing of cells over seeds and resume rely on, each clause named as a violation says it:

- `runs`: it returns a tensor for a batch of the study's shape, without raising;
- `shape`, `dtype`: the batch it returns has the input's shape and dtype;
- `range`: its values are finite and in [0, 1];
- `in place`: the input batch is left as it was (the other view, the base crop and the preview read it);
- `same stream`: the same stream (a generator seeded alike) gives the same output, so a resumed run
  draws what it would have drawn;
- `different streams`: an op that draws from its stream gives another output under another stream
  (its draws decide something); an op that draws nothing is deterministic and exempt. An op with p: 1
  whose draws then decide nothing (sobel at p 1) is flagged: with these parameters it is deterministic,
  which is worth knowing, and the built-in ops are not checked (their tests hold them to the contract);
- `global generator`: it draws nothing from torch's global generator (or Python's or NumPy's), which
  would make a cell's draws depend on what ran before it: pairing over seeds and resume break.

`check_op` raises OpContractError naming the op and the first broken clause; it is for ops registered
from outside the engine (`augmentations.register_op`).
"""

from __future__ import annotations

import random
from typing import Any

import numpy
import torch
from torch import Tensor

from simclr_core.augmentations import OPS

# The test batch and streams: enough that an op applied with a small per-sample probability still
# changes some image under some stream (a miss for p = 0.05 has probability 0.95 ** (64 * 8), 4e-12).
CONTRACT_BATCH = 64
CONTRACT_SIZE = 16
_STREAM_SEEDS = tuple(range(1, 10))


class OpContractError(ValueError):
    """An op that breaks the contract: `op`, the broken `clause`, and what was seen."""

    def __init__(self, op: str, clause: str, seen: str):
        self.op, self.clause, self.seen = op, clause, seen
        super().__init__(f"op {op} breaks the op contract ({clause}): {seen}")


def contract_batch(size: int = CONTRACT_SIZE, batch: int = CONTRACT_BATCH) -> Tensor:
    """Random images in [0, 1] with one all-black and one all-white image (the range's edges)."""
    images = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    images[0], images[1] = 0.0, 1.0
    return images


def check_op(name: str, params: dict[str, Any] | None = None, images: Tensor | None = None) -> None:
    """Run op `name` with `params` (its defaults for the rest) on a small batch and raise OpContractError
    at the first clause it breaks (see the module docstring)."""
    op, params = OPS[name], dict(params or {})
    images = contract_batch() if images is None else images
    original = images.clone()
    global_states = _global_states()
    first_stream = torch.Generator(device=images.device).manual_seed(_STREAM_SEEDS[0])
    untouched = first_stream.get_state()
    first = _run(name, op, images, first_stream, params)
    if _global_states() != global_states:
        raise OpContractError(name, "global generator", "it drew from a global random generator (torch, numpy or "
                                                         "random); draw from the generator it is given")
    if not torch.equal(images, original):
        raise OpContractError(name, "in place", "it changed its input batch; return a new batch (images.clone() "
                                                "before editing, or out-of-place ops)")
    if first.shape != images.shape:
        raise OpContractError(name, "shape", f"it returned shape {tuple(first.shape)} for a batch of "
                                             f"{tuple(images.shape)}")
    if first.dtype != images.dtype:
        raise OpContractError(name, "dtype", f"it returned {first.dtype} for a batch of {images.dtype}")
    if not bool(torch.isfinite(first).all()) or first.min() < 0 or first.max() > 1:
        raise OpContractError(name, "range", f"its values span [{first.min().item():.4g}, {first.max().item():.4g}]; "
                                             f"keep them in [0, 1] (clamp)")
    again = _run(name, op, images, torch.Generator(device=images.device).manual_seed(_STREAM_SEEDS[0]), params)
    if not torch.equal(first, again):
        raise OpContractError(name, "same stream", "two calls on one stream gave different outputs; draw every "
                                                   "random number from the generator it is given")
    drew = not torch.equal(first_stream.get_state(), untouched)
    others = [_run(name, op, images, torch.Generator(device=images.device).manual_seed(seed), params)
              for seed in _STREAM_SEEDS[1:]]
    if drew and all(torch.equal(first, other) for other in others):
        raise OpContractError(name, "different streams", f"it drew from its stream, yet {len(_STREAM_SEEDS)} "
                                                         "streams gave one output; its draws must decide the output (an op that is "
                                                         "deterministic with these parameters should draw nothing)")


def _run(name: str, op: Any, images: Tensor, generator: torch.Generator, params: dict[str, Any]) -> Tensor:
    try:
        result = op(images, generator, **params)
    except Exception as error:  # the user's op, whatever it raises: named, in one line
        text = " ".join(str(error).split())[:300]
        raise OpContractError(name, "runs", f"on a batch of {tuple(images.shape)} it raised "
                                            f"{type(error).__name__}: {text}") from None
    if not isinstance(result, Tensor):
        raise OpContractError(name, "runs", f"it returned {type(result).__name__}, not a tensor")
    return result


def _global_states() -> tuple[Any, ...]:
    # torch's CPU generator, Python's, and NumPy's legacy global state (its key array as bytes, its position
    # and cached Gaussian), each comparable with ==.
    name, keys, position, has_gauss, cached = numpy.random.get_state()
    return (torch.get_rng_state().numpy().tobytes(), random.getstate(), keys.tobytes(), position, has_gauss, cached)
