"""The one volume type every reader returns and every consumer takes.

Conventions (the same as 3D Slicer's ``slicer.util.arrayFromVolume``):

* ``voxels`` is indexed ``[k, j, i]``: slice, row, column, in Hounsfield units (HU).
* ``ijk_to_ras`` is the 4x4 matrix mapping homogeneous voxel indices ``(i, j, k, 1)`` to
  RAS coordinates in millimetres (+x toward the patient's Right, +y Anterior, +z Superior).
  DICOM's LPS is converted by the readers.

How the axial axis is chosen
----------------------------
L3 is searched along the *axial axis*: the one of the three array axes whose direction is
closest (largest absolute cosine) to RAS superior. For an ordinary axial acquisition, and for
an oblique one tilted by less than 45 degrees, that is the stored ``k`` axis, so slice indices
are plain ``k`` indices as Slicer shows them. A reformatted volume stored sagittally or coronally
is searched along whichever array axis runs head–foot, and reported indices are along that axis
(:attr:`CTVolume.axial_axis` names it). Slices keep their stored order; nothing is resampled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Names of the three voxel axes, in the order of the columns of ``ijk_to_ras``.
AXIS_NAMES = ("i", "j", "k")


@dataclass
class CTVolume:
    """A CT volume in HU with its voxel-to-RAS geometry.

    Attributes:
        voxels: HU values indexed ``[k, j, i]`` (any real dtype; readers give int16 or float32).
        ijk_to_ras: 4x4 float64 matrix, voxel index ``(i, j, k, 1)`` → RAS millimetres.
        source: where the volume came from (a path, or a description such as ``"phantom"``).
        metadata: free-form facts from the reader (modality, series UID, ...). Two keys have a
            fixed meaning: ``"warnings"``, a list of one-line strings saying what the reader
            and the checks noticed (shown to the user and written to the result), and
            ``"looks_like_ct"``, the verdict of the HU value-range check
            (:func:`l3locator.reading.check_ct_values`).

    Raises:
        ValueError: voxels not 3D or empty, or ``ijk_to_ras`` not a finite, invertible 4x4 matrix.
    """

    voxels: np.ndarray
    ijk_to_ras: np.ndarray
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ijk_to_ras = np.asarray(self.ijk_to_ras, dtype=np.float64)
        if self.voxels.ndim != 3:
            raise ValueError(f"a CT volume needs a 3D array, got shape {self.voxels.shape}")
        if self.voxels.size == 0:
            raise ValueError(f"a CT volume needs at least one voxel along each axis, got shape {self.voxels.shape}")
        if self.ijk_to_ras.shape != (4, 4):
            raise ValueError(f"ijk_to_ras must be 4x4, got {self.ijk_to_ras.shape}")
        if not np.all(np.isfinite(self.ijk_to_ras)):
            raise ValueError("ijk_to_ras has non-finite (NaN or infinite) entries")
        if abs(np.linalg.det(self.ijk_to_ras[:3, :3])) < 1e-12:
            raise ValueError("ijk_to_ras is singular")

    # --- geometry -------------------------------------------------------------------------
    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along (i, j, k)."""
        return tuple(float(v) for v in np.linalg.norm(self.ijk_to_ras[:3, :3], axis=0))

    @property
    def directions(self) -> np.ndarray:
        """3x3 matrix whose columns are the unit RAS directions of the i, j and k axes."""
        return self.ijk_to_ras[:3, :3] / np.asarray(self.spacing)

    @property
    def axial_axis(self) -> int:
        """Index (0 = i, 1 = j, 2 = k) of the voxel axis closest to RAS superior."""
        return int(np.argmax(np.abs(self.directions[2, :])))

    @property
    def num_slices(self) -> int:
        """Number of slices along the axial axis."""
        return int(self.voxels.shape[2 - self.axial_axis])

    @property
    def slice_thickness(self) -> float:
        """Distance between neighbouring axial slices, in mm."""
        return self.spacing[self.axial_axis]

    @property
    def superior_step(self) -> int:
        """+1 if the axial index grows toward the head (superior), -1 if toward the feet."""
        return 1 if self.directions[2, self.axial_axis] > 0 else -1

    def ras_of_ijk(self, ijk: np.ndarray | list[float]) -> np.ndarray:
        """RAS position (mm) of a continuous voxel index ``(i, j, k)``."""
        return (self.ijk_to_ras @ np.append(np.asarray(ijk, dtype=np.float64), 1.0))[:3]

    def ijk_of_ras(self, ras: np.ndarray | list[float]) -> np.ndarray:
        """Continuous voxel index ``(i, j, k)`` of a RAS position (mm)."""
        return (np.linalg.inv(self.ijk_to_ras) @ np.append(np.asarray(ras, dtype=np.float64), 1.0))[:3]

    def slice_center_ras(self, index: int | float) -> np.ndarray:
        """RAS position (mm) of the centre of axial slice ``index`` (along :attr:`axial_axis`)."""
        ijk = (np.asarray(self.voxels.shape[::-1], dtype=np.float64) - 1.0) / 2.0
        ijk[self.axial_axis] = index
        return self.ras_of_ijk(ijk)

    # --- slices ----------------------------------------------------------------------------
    def axial_stack(self) -> np.ndarray:
        """The volume as a stack of axial slices ``[slice, row, column]`` in a canonical view.

        The slice axis is :attr:`axial_axis` in stored order (index = reported slice index).
        In-plane, rows run anterior→posterior and columns run patient right→left, the
        radiological display convention, so a model sees every input the same way up whatever
        the file's storage order. Returns a view where possible (no copy).
        """
        axial = self.axial_axis
        in_plane = [a for a in range(3) if a != axial]
        # Of the two in-plane axes, the one closer to anterior–posterior becomes the rows.
        ap_cos = np.abs(self.directions[1, in_plane])
        row_axis, col_axis = (in_plane[0], in_plane[1]) if ap_cos[0] >= ap_cos[1] else (in_plane[1], in_plane[0])
        # voxels is [k, j, i]: array dimension of voxel axis a is 2 - a.
        stack = np.transpose(self.voxels, (2 - axial, 2 - row_axis, 2 - col_axis))
        if self.directions[1, row_axis] > 0:  # rows should run toward posterior (-A)
            stack = stack[:, ::-1, :]
        if self.directions[0, col_axis] > 0:  # columns should run toward patient left (-R)
            stack = stack[:, :, ::-1]
        return stack

    def blank_slices(self) -> np.ndarray:
        """Indices (int64, along :attr:`axial_axis`) of the axial slices that hold one value
        throughout: no image there (padding, or NaN that a reader replaced by the minimum value).

        A sparse grid of each slice (every 8th row and column) is checked first, so an ordinary
        scan costs 1/64 of a pass over its voxels; only slices flat on that grid are read whole.
        """
        stack = self.axial_stack()
        grid = stack[:, ::8, ::8]
        flat_on_grid = np.flatnonzero(grid.min(axis=(1, 2)) == grid.max(axis=(1, 2)))
        return np.array([k for k in flat_on_grid if stack[k].min() == stack[k].max()], dtype=np.int64)

    def describe(self) -> str:
        """One line for logs: shape, spacing and source."""
        sp = ", ".join(f"{s:.2f}" for s in self.spacing)
        return f"{self.source or 'volume'}: {self.voxels.shape[::-1]} voxels (i, j, k), spacing ({sp}) mm"
