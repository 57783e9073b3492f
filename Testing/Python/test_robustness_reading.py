"""Bad and odd inputs for the readers and the input checks (issue 11): a small corpus made at test time.

Each bad input must raise :class:`InputError` with one line naming the file and the reason; what
the readers notice on a usable input must reach ``metadata["warnings"]``. Files are written with
nibabel, pynrrd and pydicom directly, so the corpus does not depend on the project's writers.
"""

from __future__ import annotations

import os
import socket
import struct
import tempfile
import threading
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from l3locator.errors import InputError
from l3locator.reading import check_ct_values, check_volume, load_ct
from l3locator.volume import CTVolume

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# --- the corpus: small CT-like volumes and writers --------------------------------------------------
def ct_slices(shape=(10, 32, 32), seed=0) -> np.ndarray:
    """int16 HU ``[k, j, i]``: air (-1000) around a soft-tissue disc (40) with a bone core (700)."""
    rng = np.random.default_rng(seed)
    nk, nj, ni = shape
    jj, ii = np.mgrid[:nj, :ni]
    r = np.hypot(jj - nj / 2, ii - ni / 2)
    plane = np.where(r < nj * 0.4, 40, -1000) + np.where(r < nj * 0.1, 660, 0)
    return (plane[None] + rng.integers(-15, 16, shape)).astype(np.int16)


def write_ct_dicom(
    folder: Path,
    hu: np.ndarray,
    *,
    spacing=(0.8, 0.8, 2.5),
    rescale: tuple[float, float] | None = (1.0, -1024.0),
    rescale_missing_in: tuple[int, ...] | None = None,
    tilt_tag: float | None = None,
    series_uid: str | None = None,
) -> list[Path]:
    """One axial CT series, a file per slice (LPS positions along +z), with pydicom.

    ``rescale``: (slope, intercept) written in every file, stored values = (HU - intercept) / slope,
    unsigned when they are all >= 0. None: no rescale tags, HU stored as signed values.
    ``rescale_missing_in``: slice indices whose files lose both rescale tags (stored values kept).
    """
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    study_uid = generate_uid()
    slope, intercept = rescale or (1.0, 0.0)
    stored = np.round((hu.astype(np.float64) - intercept) / slope).astype(np.int32)
    signed = bool(stored.min() < 0)
    stored = stored.astype(np.int16 if signed else np.uint16)
    paths = []
    for k, pixels in enumerate(stored):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.Modality, ds.InstanceNumber = "CT", k + 1
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-12.0, -34.0, -300.0 + k * spacing[2]]
        ds.PixelSpacing = [spacing[1], spacing[0]]
        ds.SliceThickness = spacing[2]
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = int(signed)
        if rescale is not None and k not in (rescale_missing_in or ()):
            ds.RescaleSlope, ds.RescaleIntercept = f"{slope:g}", f"{intercept:g}"
        if tilt_tag is not None:
            ds.GantryDetectorTilt = tilt_tag
        ds.PixelData = pixels.astype("<i2" if signed else "<u2").tobytes()
        path = folder / f"IM{k:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def nifti_affine(spacing=(0.8, 0.8, 2.5)) -> np.ndarray:
    return np.diag([*spacing, 1.0])


def save_nifti(path: Path, hu: np.ndarray, affine=None, *, qform_only: bool = False) -> Path:
    """A NIfTI-1 file of ``hu`` (``[k, j, i]``); ``qform_only``: no sform, geometry from the qform and pixdim."""
    img = nib.Nifti1Image(np.ascontiguousarray(hu.T), nifti_affine() if affine is None else affine)
    if qform_only:
        img.set_sform(None, code=0)
        img.set_qform(img.affine, code=1)
    nib.save(img, path)
    return path


def patch_pixdim(path: Path, axis: int, value: float) -> None:
    """Overwrite ``pixdim[axis]`` of an uncompressed NIfTI-1 file (little-endian float32 at byte 76)."""
    data = bytearray(path.read_bytes())
    struct.pack_into("<f", data, 76 + 4 * axis, value)
    path.write_bytes(bytes(data))


def one_line_error(excinfo: pytest.ExceptionInfo, *parts: str) -> str:
    """The error's message, checked to be one line holding every one of ``parts``."""
    message = str(excinfo.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    return message


# --- zero-length dimensions -------------------------------------------------------------------------
def test_nifti_with_a_zero_length_dimension_is_refused(tmp_path):
    path = tmp_path / "empty.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 0), np.int16), np.eye(4)), path)
    with pytest.raises(InputError) as err:
        load_ct(path)
    one_line_error(err, str(path), "holds no voxels", "8 x 8 x 0")


def test_nrrd_with_a_zero_length_dimension_is_refused(tmp_path):
    path = tmp_path / "empty.nrrd"
    path.write_text(
        "NRRD0004\ntype: short\ndimension: 3\nsizes: 64 64 0\nendian: little\nencoding: raw\n"
        "space: left-posterior-superior\nspace directions: (1,0,0) (0,1,0) (0,0,1)\n\n"
    )
    with pytest.raises(InputError) as err:
        load_ct(path)
    one_line_error(err, str(path), "holds no voxels", "64 x 64 0".replace(" 0", " x 0"))


def test_volume_type_refuses_empty_arrays_and_non_finite_geometry():
    with pytest.raises(ValueError, match="at least one voxel"):
        CTVolume(np.zeros((0, 4, 4), np.int16), np.eye(4))
    matrix = np.eye(4)
    matrix[2, 2] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        CTVolume(np.zeros((3, 4, 4), np.int16), matrix)


# --- files that are not regular files ----------------------------------------------------------------
def load_without_hanging(path: Path) -> BaseException | None:
    """Run ``load_ct(path)`` in a thread and return what it raised; fail (and unblock it) if it hangs."""
    outcome: dict[str, BaseException | None] = {}

    def run() -> None:
        try:
            load_ct(path)
            outcome["error"] = None
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # blocked opening a FIFO: give it a writer so the thread can end
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        worker.join(10)
        pytest.fail(f"load_ct blocked on {path}")
    return outcome["error"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.parametrize("name", ["scan.nii.gz", "scan.nrrd", "slice.dcm", "noextension"])
def test_a_fifo_is_refused_without_opening_it(tmp_path, name):
    path = tmp_path / name
    os.mkfifo(path)
    error = load_without_hanging(path)
    assert isinstance(error, InputError), error
    assert "\n" not in str(error) and str(path) in str(error) and "FIFO" in str(error)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifos_in_a_dicom_folder_are_skipped_not_opened(tmp_path):
    hu = ct_slices()
    write_ct_dicom(tmp_path, hu)
    os.mkfifo(tmp_path / "zz_pipe.dcm")
    os.mkfifo(tmp_path / "aa_pipe")
    error = load_without_hanging(tmp_path)
    assert error is None, error
    assert np.array_equal(load_ct(tmp_path).voxels, hu)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_detached_nrrd_data_file_that_is_a_fifo_is_refused(tmp_path):
    os.mkfifo(tmp_path / "data.raw")
    (tmp_path / "scan.nhdr").write_text(
        "NRRD0004\ntype: short\ndimension: 3\nsizes: 8 8 4\nendian: little\nencoding: raw\n"
        "space: left-posterior-superior\nspace directions: (1,0,0) (0,1,0) (0,0,1)\ndata file: data.raw\n\n"
    )
    error = load_without_hanging(tmp_path / "scan.nhdr")
    assert isinstance(error, InputError) and "data.raw is a FIFO" in str(error), error


def test_devices_and_sockets_are_refused(tmp_path):
    if os.path.exists("/dev/null"):
        with pytest.raises(InputError, match="/dev/null is a character device"):
            load_ct("/dev/null")
    if not hasattr(socket, "AF_UNIX"):
        return
    with tempfile.TemporaryDirectory(dir="/tmp" if os.path.isdir("/tmp") else None) as short:
        path = os.path.join(short, "scan.nii")  # short: a socket path is limited to about 100 bytes
        server = socket.socket(socket.AF_UNIX)
        try:
            server.bind(path)
            with pytest.raises(InputError, match="is a socket"):
                load_ct(path)
        finally:
            server.close()


# --- folders and files that cannot be read ----------------------------------------------------------
def test_unlistable_dicom_folder_is_refused_with_the_reason(tmp_path, monkeypatch):
    write_ct_dicom(tmp_path / "series", ct_slices())
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path) == tmp_path / "series":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(InputError) as err:
        load_ct(tmp_path / "series")
    one_line_error(err, "cannot list the folder", str(tmp_path / "series"), "Permission denied")


def test_inaccessible_path_is_refused_with_the_reason(tmp_path, monkeypatch):
    target = tmp_path / "locked" / "scan.nii.gz"
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        if Path(path) == target:
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    with pytest.raises(InputError) as err:
        load_ct(target)
    one_line_error(err, "cannot access", str(target), "Permission denied")


def test_unreadable_dicom_files_are_named_in_the_missing_slice_error(tmp_path, monkeypatch):
    files = write_ct_dicom(tmp_path, ct_slices((12, 32, 32)))
    locked = {files[4].name, files[5].name, files[6].name, files[7].name}
    real_dcmread = pydicom.dcmread

    def dcmread(path, *args, **kwargs):
        if Path(path).name in locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_dcmread(path, *args, **kwargs)

    monkeypatch.setattr(pydicom, "dcmread", dcmread)
    with pytest.raises(InputError) as err:
        load_ct(tmp_path)
    message = one_line_error(err, "4 missing slice(s)", "4 file(s) that look like DICOM could not be read", "Permission denied")
    named = [name for name in sorted(locked) if name in message]
    assert len(named) == 3 and "and 1 more" in message


def test_every_dicom_file_unreadable_is_named(tmp_path, monkeypatch):
    files = write_ct_dicom(tmp_path, ct_slices((3, 32, 32)))

    def dcmread(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(pydicom, "dcmread", dcmread)
    with pytest.raises(InputError) as err:
        load_ct(tmp_path)
    one_line_error(err, "no DICOM image files found", "3 file(s)", files[0].name, "Permission denied")


@pytest.mark.skipif(IS_ROOT, reason="root reads files whatever their permissions")
def test_permissions_really_denied(tmp_path):
    files = write_ct_dicom(tmp_path / "series", ct_slices())
    files[3].chmod(0)
    with pytest.raises(InputError) as err:
        load_ct(tmp_path / "series")
    one_line_error(err, files[3].name, "Permission denied")
    files[3].chmod(0o644)
    (tmp_path / "series").chmod(0)
    try:
        with pytest.raises(InputError) as err:
            load_ct(tmp_path / "series")
        one_line_error(err, "Permission denied")
    finally:
        (tmp_path / "series").chmod(0o755)


def test_damaged_dicom_file_is_named_not_just_reported_missing(tmp_path):
    files = write_ct_dicom(tmp_path, ct_slices())
    files[5].write_bytes(files[5].read_bytes()[:500])  # header cut short: no Rows, no series UID
    with pytest.raises(InputError) as err:
        load_ct(tmp_path)
    one_line_error(err, "1 missing slice(s)", f"{files[5].name} (incomplete image header")
    with pytest.raises(InputError) as err:
        load_ct(files[5])
    one_line_error(err, "cannot read the DICOM file", files[5].name)


def test_damaged_file_outside_the_series_is_a_named_warning(tmp_path):
    files = write_ct_dicom(tmp_path, ct_slices())
    (tmp_path / "extra.dcm").write_bytes(files[0].read_bytes()[:400])
    (tmp_path / "README.txt").write_text("not DICOM")  # plainly not DICOM: skipped without a word
    volume = load_ct(tmp_path)
    assert volume.metadata["unreadable_files"] == ["extra.dcm"] and volume.metadata["skipped_files"] == 2
    assert [w for w in volume.metadata["warnings"] if "extra.dcm" in w and "could not be read" in w]


def test_unusable_dicom_geometry_values_are_refused(tmp_path):
    files = write_ct_dicom(tmp_path / "nan", ct_slices())
    ds = pydicom.dcmread(files[2])
    with pytest.warns(UserWarning, match="Invalid value for VR DS"):
        ds.ImagePositionPatient = ["nan", "0", "0"]
    ds.save_as(files[2])
    with pytest.raises(InputError) as err:
        load_ct(tmp_path / "nan")
    one_line_error(err, files[2].name, "ImagePositionPatient")
    files = write_ct_dicom(tmp_path / "zero", ct_slices())
    for path in files:
        ds = pydicom.dcmread(path)
        ds.PixelSpacing = [0, 0]
        ds.save_as(path)
    with pytest.raises(InputError) as err:
        load_ct(tmp_path / "zero")
    one_line_error(err, "PixelSpacing must be positive")


# --- DICOM values: rescale tags and the CT value check -----------------------------------------------
def test_dicom_without_rescale_tags_and_raw_values_is_refused(tmp_path):
    """Stored 0..4095 (HU + 1024) without RescaleIntercept: taking them as HU gave wrong answers."""
    hu = ct_slices()
    files = write_ct_dicom(tmp_path, hu, rescale=(1.0, -1024.0), rescale_missing_in=tuple(range(len(hu))))
    assert "RescaleIntercept" not in pydicom.dcmread(files[0])
    with pytest.raises(InputError) as err:
        load_ct(tmp_path)
    one_line_error(err, str(tmp_path), f"10 of 10 files ({files[0].name} and 9 more)", "no RescaleSlope/RescaleIntercept", "not HU already")


def test_dicom_with_rescale_tags_missing_in_some_files_is_refused(tmp_path):
    files = write_ct_dicom(tmp_path, ct_slices(), rescale=(1.0, -1024.0), rescale_missing_in=(3,))
    with pytest.raises(InputError) as err:
        load_ct(tmp_path)
    one_line_error(err, f"1 of 10 files ({files[3].name})", "no RescaleSlope/RescaleIntercept")


def test_dicom_without_rescale_tags_but_stored_hu_is_read_with_a_warning(tmp_path):
    hu = ct_slices()
    files = write_ct_dicom(tmp_path, hu, rescale=None)
    ds = pydicom.dcmread(files[0])
    assert ds.PixelRepresentation == 1 and "RescaleSlope" not in ds
    volume = load_ct(tmp_path)
    assert np.array_equal(volume.voxels, hu) and volume.metadata["looks_like_ct"] is True
    assert [w for w in volume.metadata["warnings"] if "no RescaleSlope/RescaleIntercept" in w and "taken as HU" in w]


def test_dicom_ct_values_are_checked_like_other_formats(tmp_path):
    soft = np.clip(ct_slices(), -1000, 100)  # air and soft tissue, no bone: not what an L3 search needs
    write_ct_dicom(tmp_path, soft)
    volume = load_ct(tmp_path)
    assert volume.metadata["looks_like_ct"] is False
    assert "no bone or contrast" in volume.metadata["ct_value_problem"]
    with pytest.raises(InputError) as err:
        check_volume(volume)
    one_line_error(err, str(tmp_path), "no bone or contrast (nothing above 200 HU)")


# --- NIfTI voxel size (pixdim) -------------------------------------------------------------------------
@pytest.mark.parametrize("value", [0.0, -2.5, float("nan")])
def test_nifti_unusable_slice_spacing_without_sform_is_refused(tmp_path, value, capfd):
    path = save_nifti(tmp_path / "scan.nii", ct_slices(), qform_only=True)
    patch_pixdim(path, 3, value)
    with pytest.raises(InputError) as err:
        load_ct(path)
    one_line_error(err, str(path), "the voxel size is unknown", f"pixdim[3] = {value:g}")
    assert capfd.readouterr().err == ""  # nothing printed by nibabel


def test_nifti_unusable_pixdim_with_a_valid_sform_uses_the_sform_and_says_so(tmp_path, capfd):
    path = save_nifti(tmp_path / "scan.nii", ct_slices(), nifti_affine((0.8, 0.8, 2.5)))
    patch_pixdim(path, 3, 0.0)
    volume = load_ct(path)
    assert volume.spacing == pytest.approx((0.8, 0.8, 2.5))
    assert [w for w in volume.metadata["warnings"] if "pixdim[3] = 0" in w and "sform" in w and "2.5 mm" in w]
    assert capfd.readouterr().err == ""


def test_nifti_non_finite_sform_is_refused(tmp_path):
    path = save_nifti(tmp_path / "scan.nii", ct_slices())
    data = bytearray(path.read_bytes())
    struct.pack_into("<f", data, 312 + 8, float("nan"))  # srow_z[2]: the slice axis' z component
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as err:
        load_ct(path)
    one_line_error(err, str(path), "unusable geometry", "non-finite")


def test_nifti_header_fixes_become_warnings_not_stderr(tmp_path, capfd):
    path = save_nifti(tmp_path / "scan.nii", ct_slices())
    data = bytearray(path.read_bytes())
    struct.pack_into("<h", data, 254, 9)  # sform_code 9 does not exist
    path.write_bytes(bytes(data))
    volume = load_ct(path)
    assert [w for w in volume.metadata["warnings"] if "sform_code 9 not valid" in w]
    assert capfd.readouterr().err == ""


def test_nifti_undefined_unit_and_dimension_codes_are_refused(tmp_path):
    path = save_nifti(tmp_path / "units.nii", ct_slices())
    data = bytearray(path.read_bytes())
    data[123] = 0x0F  # xyzt_units: spatial code 7 does not exist
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as err:
        load_ct(path)
    one_line_error(err, str(path), "undefined spatial unit code 7")
    path = save_nifti(tmp_path / "dims.nii", ct_slices())
    data = bytearray(path.read_bytes())
    struct.pack_into("<h", data, 40, 9)  # dim[0]: at most 7 dimensions
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as err:
        load_ct(path)
    one_line_error(err, str(path), "is not a valid NIfTI file (dim[0]")


def test_nifti_nan_voxels_are_replaced_with_a_warning(tmp_path):
    hu = ct_slices().astype(np.float32)
    hu[2, 3, 4] = np.nan
    volume = load_ct(save_nifti(tmp_path / "nan.nii.gz", hu))
    assert np.isfinite(volume.voxels).all()
    assert [w for w in volume.metadata["warnings"] if "1 NaN/infinite voxels replaced" in w]


def test_nrrd_without_any_voxel_size_is_refused_and_odd_origin_or_units_are_warnings(tmp_path):
    data = ct_slices().T
    nrrd.write(str(tmp_path / "bare.nrrd"), data)
    with pytest.raises(InputError) as err:
        load_ct(tmp_path / "bare.nrrd")
    one_line_error(err, "bare.nrrd", "the voxel size is unknown")
    header = {"space": "left-posterior-superior", "space directions": np.diag([0.8, 0.8, 2.5]),
              "space origin": np.array([1.0, np.nan, 3.0])}
    nrrd.write(str(tmp_path / "origin.nrrd"), data, header)
    volume = load_ct(tmp_path / "origin.nrrd")
    assert [w for w in volume.metadata["warnings"] if "space origin" in w]
    nrrd.write(str(tmp_path / "inches.nrrd"), data, {**header, "space origin": np.zeros(3), "space units": ["inch"] * 3})
    assert [w for w in load_ct(tmp_path / "inches.nrrd").metadata["warnings"] if "unknown 'space units' 'inch'" in w]


def test_pydicom_warnings_reach_the_metadata_not_stderr(tmp_path, capfd):
    files = write_ct_dicom(tmp_path, ct_slices())
    for path in files:  # a description longer than its VR allows (LO: 64 characters)
        ds = pydicom.dcmread(path)
        with pytest.warns(UserWarning, match="exceeds the maximum length of 64 allowed for VR LO"):
            ds.SeriesDescription = "abdomen " * 10
        ds.save_as(path)
    volume = load_ct(tmp_path)
    assert volume.metadata["series_description"] == ("abdomen " * 10).strip()
    assert [w for w in volume.metadata["warnings"] if "exceeds the maximum length of 64 allowed for VR LO" in w]
    assert capfd.readouterr().err == ""


def test_dicom_tilt_tag_with_straight_positions_is_a_warning(tmp_path):
    write_ct_dicom(tmp_path, ct_slices(), tilt_tag=12.0)
    volume = load_ct(tmp_path)
    assert [w for w in volume.metadata["warnings"] if "GantryDetectorTilt is 12" in w]


def test_all_reader_warnings_are_one_line_strings(tmp_path):
    first, second = generate_uid(), generate_uid()
    write_ct_dicom(tmp_path, ct_slices((10, 32, 32)), series_uid=first, tilt_tag=5.0)
    write_ct_dicom(tmp_path / "other", ct_slices((6, 32, 32), seed=1), series_uid=second)
    for path in (tmp_path / "other").iterdir():
        path.rename(tmp_path / f"other_{path.name}")
    warnings = load_ct(tmp_path).metadata["warnings"]
    assert len(warnings) == 2 and all(isinstance(w, str) and "\n" not in w for w in warnings)
    assert any("1 other series" in w for w in warnings)


# --- the value check and check_volume --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (-1000, 1500, None),
        (0, 4095, "no air (nothing below -500 HU), as in an MR, a PET or a CT stored without its rescale"),
        (-1000, 150, "no bone or contrast (nothing above 200 HU)"),
        (0, 22, "no air (nothing below -500 HU) and no bone or contrast"),
        (300, 300, "every voxel has the value 300"),
    ],
)
def test_ct_value_check_says_what_is_wrong(low, high, expected):
    voxels = np.full((2, 4, 4), low, np.float32)
    voxels[1] = high
    metadata: dict = {}
    problem = check_ct_values(voxels, metadata)
    assert metadata["looks_like_ct"] is (expected is None) and metadata["value_range"] == (low, high)
    if expected is None:
        assert problem is None and "warnings" not in metadata
    else:
        assert expected in problem and problem in metadata["warnings"][0]
        if low != high:
            assert f"values range from {low:g} to {high:g}" in problem


def in_memory(voxels: np.ndarray, spacing=(1.5, 1.5, 3.0), source="memory") -> CTVolume:
    return CTVolume(voxels, np.diag([*spacing, 1.0]), source=source)


def test_check_volume_judges_in_memory_volumes_by_the_same_rule():
    mr_like = in_memory(np.abs(ct_slices((10, 40, 40))).astype(np.int16) + 100)
    with pytest.raises(InputError) as err:
        check_volume(mr_like)
    one_line_error(err, "memory: values do not look like CT", "no air (nothing below -500 HU)")
    assert mr_like.metadata["looks_like_ct"] is False and mr_like.metadata["warnings"]
    no_bone = in_memory(np.clip(ct_slices((10, 40, 40)), -1000, 100))
    with pytest.raises(InputError, match=r"no bone or contrast"):
        check_volume(no_bone)
    with_nan = ct_slices((10, 40, 40)).astype(np.float32)
    with_nan[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN or infinite"):
        check_volume(in_memory(with_nan))
    good = in_memory(ct_slices((10, 40, 40)))
    check_volume(good)
    assert good.metadata["looks_like_ct"] is True and good.metadata["value_range"][0] < -900


def test_a_line_of_voxels_is_not_an_axial_ct(tmp_path):
    column = np.full((500, 1, 1), 40, np.int16)
    column[::7] = -1000
    column[::11] = 700
    path = save_nifti(tmp_path / "column.nii.gz", column, nifti_affine((1.0, 1.0, 1.0)))
    volume = load_ct(path)  # readable: the search refuses it
    with pytest.raises(InputError) as err:
        check_volume(volume)
    one_line_error(err, str(path), "axial slices of 1 x 1 voxels (1.0 x 1.0 mm)", "at least 16 voxels and 30 mm")


@pytest.mark.parametrize(
    ("size", "spacing", "accepted"),
    [(73, 1.5, True), (20, 1.5, True), (19, 1.5, False), (15, 3.0, False), (512, 0.05, False)],
)
def test_minimum_in_plane_size(size, spacing, accepted):
    volume = in_memory(ct_slices((6, size, size)), spacing=(spacing, spacing, 2.0))
    if accepted:
        check_volume(volume)
    else:
        with pytest.raises(InputError, match="too small to show a vertebra"):
            check_volume(volume)


def test_real_tight_crop_around_l3_passes_the_checks(shared_data):
    volume = load_ct(shared_data / "tptbox_L3_crop.nii.gz")
    check_volume(volume)
    assert volume.voxels.shape == (47, 73, 73)


def test_every_real_scan_reads_without_warnings_and_passes_the_checks(shared_data):
    scans = sorted(p for p in shared_data.glob("*.nii.gz") if "vertebrae" not in p.name)
    for path in [*scans, shared_data / "itkelastix_thorax_dicom"]:
        volume = load_ct(path)
        check_volume(volume)
        assert volume.metadata["warnings"] == [], (path, volume.metadata["warnings"])
