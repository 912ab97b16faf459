"""An ensemble's answer for one case: every member's probabilities, the means and uncertainty.

Numpy only (no torch), so a viewer or a report can hold and read predictions without the models.
The engine fills a ``Prediction`` slice by slice (``update``); ``done`` says which slices hold
results, the others are 0 until then, so a partial prediction can be drawn as it grows.

Sources: ``"all"`` is the mean over all members, ``"focal"`` / ``"ce"`` (/ ``"wce"``) the mean over
the members trained with that loss; the two losses stay comparable on the very same case.

Uncertainty (``uncertainty``): the population standard deviation of the members' probabilities
per voxel, in [0, 0.5]; 0 where all members agree, high where they disagree (model uncertainty).
``entropy(source)`` gives the binary entropy of a mean probability in bits, in [0, 1]: high where
the mean itself is near 0.5, whether the members agree on it or not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from strokelens.core.metrics import volume_ml

#: Mean probability at or above which a voxel is lesion.
THRESHOLD = 0.5

#: 3D connectivity for small-component removal (scipy's 3: 26 neighbours), so a lesion touching
#: itself across a slice diagonally (5 mm slices, oblique borders) stays one component.
_CONNECTIVITY = 3


def sources_of(member_losses: list[str]) -> list[str]:
    """``"all"`` and each loss once, in the members' order."""
    return ["all", *dict.fromkeys(member_losses)]


def slice_statistics(
    probabilities: np.ndarray, member_losses: list[str]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-source mean and the member std of probabilities ``(M, n, y, x)``."""
    losses = np.asarray(member_losses)
    means = {
        source: probabilities[losses == source if source != "all" else slice(None)].mean(axis=0)
        for source in sources_of(member_losses)
    }
    return means, probabilities.std(axis=0)


@dataclass
class Prediction:
    """Per-member probabilities ``(M, z, y, x)``, per-source means and uncertainty ``(z, y, x)``."""

    case_key: str
    spacing: tuple[float, float, float]  # mm, (z, y, x)
    member_names: list[str]
    member_losses: list[str]
    members: np.ndarray  # float32 (M, z, y, x), sigmoid of each member's logit
    means: dict[str, np.ndarray]  # source -> float32 (z, y, x)
    uncertainty: np.ndarray  # float32 (z, y, x), member std
    done: np.ndarray  # bool (z,), slices holding results
    min_component_ml: float = 0.0  # components smaller than this are dropped from masks
    timing: dict[str, float] = field(
        default_factory=dict
    )  # seconds: preprocess, first_slice, total
    device: str = "cpu"
    precision: str = "fp32"  # "bf16" when the members ran under bf16 autocast

    @classmethod
    def empty(
        cls,
        case_key: str,
        shape: tuple[int, int, int],
        spacing: tuple[float, float, float],
        member_names: list[str],
        member_losses: list[str],
        min_component_ml: float = 0.0,
    ) -> Prediction:
        """A prediction with no slice done yet (all zeros)."""
        if len(member_names) != len(member_losses) or not member_names:
            raise ValueError("need one loss per member and at least one member")
        sources = sources_of(member_losses)
        return cls(
            case_key=case_key,
            spacing=tuple(float(s) for s in spacing),  # type: ignore[arg-type]
            member_names=list(member_names),
            member_losses=list(member_losses),
            members=np.zeros((len(member_names), *shape), np.float32),
            means={s: np.zeros(shape, np.float32) for s in sources},
            uncertainty=np.zeros(shape, np.float32),
            done=np.zeros(shape[0], bool),
            min_component_ml=min_component_ml,
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.uncertainty.shape  # type: ignore[return-value]

    @property
    def sources(self) -> list[str]:
        return list(self.means)

    @property
    def complete(self) -> bool:
        return bool(self.done.all())

    def member_indices(self, source: str) -> list[int]:
        if source == "all":
            return list(range(len(self.member_names)))
        found = [i for i, loss in enumerate(self.member_losses) if loss == source]
        if not found:
            raise ValueError(f"no {source!r} members; sources are {self.sources}")
        return found

    def update(
        self,
        slices: list[int] | np.ndarray,
        probabilities: np.ndarray,
        derived: tuple[dict[str, np.ndarray], np.ndarray] | None = None,
    ) -> None:
        """Store all members' probabilities ``(M, n, y, x)`` of ``slices`` and derive the rest;
        ``derived``: ``slice_statistics`` of them, computed beforehand (the app computes them in
        its reader thread, so the GUI thread only copies)."""
        z = np.asarray(slices, dtype=np.intp)
        means, std = derived or slice_statistics(probabilities, self.member_losses)
        self.members[:, z] = probabilities
        for source, mean in self.means.items():
            mean[z] = means[source]
        self.uncertainty[z] = std
        self.done[z] = True

    def mean(self, source: str = "all") -> np.ndarray:
        """Mean probability ``(z, y, x)`` of the members of ``source``."""
        if source not in self.means:
            raise ValueError(f"no {source!r} members; sources are {self.sources}")
        return self.means[source]

    def entropy(self, source: str = "all") -> np.ndarray:
        """Binary entropy (bits) of the ``source`` mean probability, ``(z, y, x)`` in [0, 1]."""
        p = np.clip(self.mean(source).astype(np.float64), 1e-12, 1 - 1e-12)
        return (-(p * np.log2(p) + (1 - p) * np.log2(1 - p))).astype(np.float32)

    def mask(self, source: str = "all") -> np.ndarray:
        """uint8 ``(z, y, x)``: mean >= 0.5, minus components under ``min_component_ml``."""
        return self._cleaned(self.mean(source) >= THRESHOLD)

    def member_volumes_ml(self) -> list[float]:
        """Each member's own lesion volume (mL): its probabilities thresholded and cleaned as
        ``mask`` does the mean's (the spread of the ensemble's core estimate)."""
        return [volume_ml(self._cleaned(p >= THRESHOLD), self.spacing) for p in self.members]

    def _cleaned(self, binary: np.ndarray) -> np.ndarray:
        if self.min_component_ml > 0 and binary.any():
            # here: the viewer imports this module at start-up, and components imports scipy
            from strokelens.core.editing.components import remove_islands

            return remove_islands(
                binary, self.min_component_ml, self.spacing, connectivity=_CONNECTIVITY
            )
        return binary.astype(np.uint8)

    def volumes_ml(self) -> dict[str, float]:
        """Lesion volume (mL) of each source's mask."""
        return {s: volume_ml(self.mask(s), self.spacing) for s in self.sources}
