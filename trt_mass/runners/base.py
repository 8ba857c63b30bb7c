"""One interface for every backend (Polygraphy-style): activate, infer on named arrays, deactivate."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType

import numpy as np

from trt_mass.errors import InputError, ModelError
from trt_mass.metadata import ModelMetadata, TensorSpec


class Runner(ABC):
    """A loaded model on one backend.

    Use as a context manager (activate on enter, release on exit) or call activate()/deactivate().
    `infer` takes and returns dicts of named NumPy arrays; inputs are checked against the model's
    metadata (names, dtypes, shapes; -1 is the dynamic length of view_index, whose values must be
    views of the model, ascending, the full view first) before they reach the backend.
    """

    backend = "abstract"

    def __init__(self) -> None:
        self._metadata: ModelMetadata | None = None

    @property
    def is_active(self) -> bool:
        return self._metadata is not None

    @property
    def metadata(self) -> ModelMetadata:
        if self._metadata is None:
            raise ModelError(f"{self.backend} runner is not active; call activate() or use it in a with block")
        return self._metadata

    def activate(self) -> Runner:
        if self._metadata is None:
            self._metadata = self._activate()
        return self

    def deactivate(self) -> None:
        if self._metadata is not None:
            self._deactivate()
            self._metadata = None

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        metadata = self.metadata
        check_feed(feed, metadata.inputs)
        if "view_index" in feed:
            check_view_index(feed["view_index"], metadata.graph_spec.geometry.num_views)
        return self._infer(feed)

    def __enter__(self) -> Runner:
        return self.activate()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.deactivate()

    @abstractmethod
    def _activate(self) -> ModelMetadata: ...

    @abstractmethod
    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def _deactivate(self) -> None: ...


def check_feed(feed: dict[str, np.ndarray], inputs: tuple[TensorSpec, ...]) -> None:
    """Raise InputError unless `feed` has exactly the model's inputs with their dtypes and shapes."""
    expected = {spec.name: spec for spec in inputs}
    if set(feed) != set(expected):
        raise InputError("feed", f"inputs {sorted(feed)} do not match the model's {sorted(expected)}")
    for name, spec in expected.items():
        array = feed[name]
        if not isinstance(array, np.ndarray):
            raise InputError(name, f"expected a NumPy array, got {type(array).__name__}")
        if array.dtype != np.dtype(spec.dtype):
            raise InputError(name, f"dtype {array.dtype}, the model takes {spec.dtype}")
        if len(array.shape) != len(spec.shape) or any(want not in (-1, got) for got, want in
                                                      zip(array.shape, spec.shape, strict=True)):
            raise InputError(name, f"shape {tuple(array.shape)}, the model takes {spec.shape}")


def check_view_index(view_index: np.ndarray, num_views: int) -> None:
    """Raise InputError unless `view_index` is 1..num_views distinct views, ascending, starting with the full view."""
    if not 1 <= view_index.size <= num_views:
        raise InputError("view_index", f"{view_index.size} views, the model runs 1 to {num_views}")
    if view_index[0] != 0 or (view_index.size > 1 and (np.diff(view_index) <= 0).any()) \
            or view_index[-1] >= num_views:
        raise InputError("view_index", f"{view_index.tolist()}: views must ascend from 0 (the full view) and stay "
                                       f"below {num_views}")
