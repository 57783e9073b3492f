"""Reading CT scans (DICOM, NIfTI, NRRD) and writing them back (l3locator.reading, l3locator.phantoms.writing)."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, generate_uid

from l3locator.errors import InputError
from l3locator.reading import list_dicom_series, load_ct
from l3locator.volume import CTVolume
from l3locator.phantoms.writing import write_dicom_series, write_nifti, write_nrrd

THORAX_DICOM = "itkelastix_thorax_dicom"


# --- helpers --------------------------------------------------------------------------------
def body_voxels(shape=(12, 32, 32), seed=0) -> np.ndarray:
    """Plausible int16 HU [k, j, i]: air around a soft-tissue disc with a bright 'bone' core."""
    rng = np.random.default_rng(seed)
    nk, nj, ni = shape
    jj, ii = np.mgrid[:nj, :ni]
    r = np.hypot(jj - nj / 2, ii - ni / 2)
    plane = np.where(r < nj * 0.4, 40, -1000) + np.where(r < nj * 0.1, 700, 0)
    noise = rng.integers(-20, 21, shape)
    return (plane[None] + noise + np.arange(nk)[:, None, None]).astype(np.int16)


def matrix(spacing=(0.8, 0.8, 2.5), directions=np.eye(3), origin=(10.0, -20.0, 30.0)) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = np.asarray(directions, dtype=float) * np.asarray(spacing)
    m[:3, 3] = origin
    return m


def rotation(axis, degrees) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    a = np.radians(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


def volume(shape=(12, 32, 32), m=None, seed=0) -> CTVolume:
    return CTVolume(body_voxels(shape, seed), matrix() if m is None else m, source="test")


def dicom_files_by_instance(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.suffix == ".dcm"]
    return sorted(files, key=lambda p: int(pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber))


def edit_dicom(path: Path, **values) -> None:
    ds = pydicom.dcmread(path)
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.save_as(path)


# --- real data --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def thorax(shared_data) -> tuple[Path, CTVolume]:
    folder = shared_data / THORAX_DICOM
    return folder, load_ct(folder)


def test_real_dicom_geometry_and_hu(thorax):
    folder, vol = thorax
    assert vol.voxels.shape == (141, 512, 512)
    assert np.allclose(vol.spacing, (0.9765625, 0.9765625, 2.0))
    assert vol.axial_axis == 2 and vol.superior_step == 1
    assert vol.voxels.dtype == np.int16
    assert np.percentile(vol.voxels, 1) < -900 and vol.voxels.max() > 300
    air = vol.voxels[70, :20, :20]  # corner outside the body
    assert abs(float(np.median(air)) + 1000) < 60
    assert vol.metadata["modality"] == "CT" and vol.metadata["num_files"] == 141
    # The first file by name is the most superior slice; its LPS position is the RAS corner of k = 140.
    for name, k in (("00-slice000.dcm", 140), ("00-slice140.dcm", 0)):
        ds = pydicom.dcmread(folder / name)
        lps = np.array([float(v) for v in ds.ImagePositionPatient])
        assert np.allclose(vol.ras_of_ijk([0, 0, k]), lps * [-1, -1, 1])
        hu = ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
        assert np.array_equal(vol.voxels[k], hu)


def test_real_dicom_slices_sorted_by_position(thorax):
    folder, vol = thorax
    files = sorted(folder.iterdir())
    z = [float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in files]
    ks = [vol.ijk_of_ras([0, 0, zz])[2] for zz in z]  # z is RAS = LPS for the third axis
    assert np.allclose(ks, np.round(ks), atol=1e-6)
    assert sorted(np.round(ks).astype(int)) == list(range(141))
    assert np.all(np.diff(sorted(z)) == pytest.approx(2.0))
    ds = pydicom.dcmread(files[77])
    k = int(round(ks[77]))
    assert np.array_equal(vol.voxels[k], ds.pixel_array.astype(np.int32) - 1024)


def test_real_dicom_file_names_do_not_matter(thorax, tmp_path):
    folder, vol = thorax
    files = sorted(folder.iterdir())
    names = [f"{n:08x}" for n in random.Random(3).sample(range(16**8), len(files))]
    for src, name in zip(files, names):
        shutil.copyfile(src, tmp_path / name)
    (tmp_path / "README").write_text("not a DICOM file\n")
    shuffled = load_ct(tmp_path)
    assert np.array_equal(shuffled.voxels, vol.voxels)
    assert np.allclose(shuffled.ijk_to_ras, vol.ijk_to_ras)
    assert shuffled.metadata["skipped_files"] == 1


@pytest.mark.parametrize("name", ["tptbox_L3_crop.nii.gz", "totalseg_chest_cta.nii.gz"])
def test_real_nifti_shape_and_spacing(shared_data, name):
    manifest = json.loads((shared_data.parent / "manifest.json").read_text())
    entry = next(e for e in manifest if e["file"] == f"real/{name}")
    vol = load_ct(shared_data / name)
    assert vol.voxels.shape == tuple(entry["shape"][::-1])
    assert np.allclose(vol.spacing, entry["spacing_mm"], atol=1e-3)
    assert vol.voxels.dtype == np.int16 and vol.axial_axis == 2
    assert vol.metadata["looks_like_ct"] is True and vol.metadata["warnings"] == []


def test_real_nifti_matches_nibabel_array(shared_data):
    path = shared_data / "tptbox_L3_crop.nii.gz"
    img = nib.load(path)
    vol = load_ct(path)
    assert np.array_equal(vol.voxels, np.transpose(img.get_fdata(), (2, 1, 0)))
    assert np.allclose(vol.ijk_to_ras, img.affine)
    assert vol.metadata["value_range"][0] < -1000  # a crop with little air still counts as CT


# --- DICOM cases built here -------------------------------------------------------------------
def test_dicom_shuffled_names_and_junk_files(tmp_path):
    vol = volume(m=matrix(directions=rotation([1, 1, 0], 20)))
    files = write_dicom_series(vol, tmp_path / "src")
    (tmp_path / "dst").mkdir()
    for n, src in enumerate(random.Random(1).sample(files, len(files))):
        shutil.copyfile(src, tmp_path / "dst" / f"{n:03d}")
        edit_dicom(tmp_path / "dst" / f"{n:03d}", InstanceNumber=n + 1)  # InstanceNumber must not decide either
    (tmp_path / "dst" / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    loaded = load_ct(tmp_path / "dst")
    assert np.array_equal(loaded.voxels, vol.voxels)
    assert np.allclose(loaded.ijk_to_ras, vol.ijk_to_ras)
    assert loaded.metadata["skipped_files"] == 1


def test_dicom_missing_middle_slice(tmp_path):
    files = write_dicom_series(volume(), tmp_path)
    files[6].unlink()
    with pytest.raises(InputError, match=r"1 missing slice.*gap of 5\.00 mm"):
        load_ct(tmp_path)


def test_dicom_uneven_and_duplicated_positions(tmp_path):
    files = write_dicom_series(volume(), tmp_path / "uneven")
    ds = pydicom.dcmread(files[5])
    edit_dicom(files[5], ImagePositionPatient=[*ds.ImagePositionPatient[:2], float(ds.ImagePositionPatient[2]) + 0.6])
    with pytest.raises(InputError, match="non-uniform slice spacing"):
        load_ct(tmp_path / "uneven")
    files = write_dicom_series(volume(), tmp_path / "dup")
    shutil.copyfile(files[3], tmp_path / "dup" / "copy.dcm")
    with pytest.raises(InputError, match="duplicated slice position"):
        load_ct(tmp_path / "dup")


def test_dicom_two_series_in_one_folder(tmp_path):
    big, small = generate_uid(), generate_uid()
    write_dicom_series(volume((12, 32, 32)), tmp_path, series_uid=big, series_description="big")
    small_files = write_dicom_series(volume((8, 32, 32), seed=1), tmp_path, series_uid=small)
    listed = [(s.uid, s.num_files, s.modality) for s in list_dicom_series(tmp_path)]
    assert listed == [(big, 12, "CT"), (small, 8, "CT")]
    chosen = load_ct(tmp_path)
    assert chosen.metadata["series_uid"] == big and chosen.voxels.shape[0] == 12
    assert chosen.metadata["series_description"] == "big" and chosen.metadata["warnings"]
    assert load_ct(tmp_path, series_uid=small).voxels.shape[0] == 8
    assert load_ct(small_files[0]).metadata["series_uid"] == small  # a file selects its own series
    with pytest.raises(InputError, match="not in"):
        load_ct(tmp_path, series_uid="1.2.3")

    other = generate_uid()
    write_dicom_series(volume((8, 32, 32), seed=2), tmp_path, series_uid=other)
    big_files = [p for p in tmp_path.iterdir() if pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID == big]
    for p in big_files[:5]:  # 7 slices left: the two 8-slice series tie
        p.unlink()
    with pytest.raises(InputError, match="2 series with 8 slices") as err:
        load_ct(tmp_path)
    assert small in str(err.value) and other in str(err.value) and big not in str(err.value)


def test_dicom_non_ct_modality_is_refused(tmp_path):
    write_dicom_series(volume(), tmp_path, modality="MR")
    with pytest.raises(InputError, match="modality MR"):
        load_ct(tmp_path)
    ct_uid = generate_uid()
    write_dicom_series(volume((8, 32, 32)), tmp_path, series_uid=ct_uid)
    assert load_ct(tmp_path).metadata["series_uid"] == ct_uid  # a CT series wins over a larger MR one


def test_dicom_without_preamble_and_per_slice_rescale(tmp_path):
    vol = volume()
    files = write_dicom_series(vol, tmp_path)
    files[2].write_bytes(files[2].read_bytes()[132:])  # no 128-byte preamble, no "DICM"
    files[2].rename(tmp_path / "IM0003")
    data = files[3].read_bytes()
    meta_end = 132 + 12 + int.from_bytes(data[140:144], "little")  # also no file meta (group 0002)
    files[3].write_bytes(data[meta_end:])
    files[3].rename(tmp_path / "IM0004")
    ds = pydicom.dcmread(files[5])
    ds.PixelData = (ds.pixel_array.astype(np.int16) * 2).astype("<i2").tobytes()
    ds.RescaleSlope = "0.5"  # same HU, stored differently: the volume becomes float32
    ds.save_as(files[5])
    loaded = load_ct(tmp_path)
    assert loaded.voxels.dtype == np.float32 and np.array_equal(loaded.voxels, vol.voxels)


def test_dicom_single_slice_is_refused(tmp_path):
    write_dicom_series(volume((1, 32, 32)), tmp_path)
    with pytest.raises(InputError, match="only 1 slice"):
        load_ct(tmp_path)


def test_dicom_inconsistent_image_sizes(tmp_path):
    uid = generate_uid()
    write_dicom_series(volume((6, 32, 32)), tmp_path, series_uid=uid)
    write_dicom_series(volume((6, 32, 40), m=matrix(origin=(10, -20, 45))), tmp_path, series_uid=uid, start_instance=7)
    with pytest.raises(InputError, match="inconsistent image sizes"):
        load_ct(tmp_path)


def test_dicom_gantry_tilt_is_refused(tmp_path):
    files = write_dicom_series(volume(), tmp_path)
    for k, path in enumerate(files):
        ds = pydicom.dcmread(path)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        edit_dicom(path, ImagePositionPatient=[x, y + k * 2.5 * np.tan(np.radians(15)), z], GantryDetectorTilt=15)
    with pytest.raises(InputError, match=r"gantry tilt \(GantryDetectorTilt = 15"):
        load_ct(tmp_path)


def test_dicom_undecodable_compressed_pixels(tmp_path):
    files = write_dicom_series(volume(), tmp_path)
    ds = pydicom.dcmread(files[4])
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51 not a real codestream " * 4])
    ds["PixelData"].VR = "OB"
    ds.save_as(files[4])
    with pytest.raises(InputError, match=rf"cannot decode.*{files[4].name}.*JPEG 2000"):
        load_ct(tmp_path)


def test_folder_without_dicom_and_bad_paths(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="no DICOM image files"):
        load_ct(tmp_path)
    with pytest.raises(InputError, match="no such file or folder"):
        load_ct(tmp_path / "missing.nii.gz")
    with pytest.raises(InputError, match=r"unsupported file type.*notes\.txt"):
        load_ct(tmp_path / "notes.txt")
    (tmp_path / "broken.nii.gz").write_bytes(b"garbage")
    with pytest.raises(InputError, match="cannot read NIfTI"):
        load_ct(tmp_path / "broken.nii.gz")


# --- NIfTI / NRRD specifics ---------------------------------------------------------------------
def test_nifti_scaling_dims_and_plausibility(tmp_path):
    raw = (body_voxels() + 1024).T.copy()  # [i, j, k], non-negative stored values
    img = nib.Nifti1Image(raw, matrix())
    img.header.set_slope_inter(1, -1024)
    nib.save(img, tmp_path / "scaled.nii.gz")
    vol = load_ct(tmp_path / "scaled.nii.gz")
    assert vol.voxels.dtype == np.int16 and np.array_equal(vol.voxels, body_voxels())

    img.header.set_slope_inter(0.5, -1024)
    nib.save(img, tmp_path / "half.nii")
    vol = load_ct(tmp_path / "half.nii")
    assert vol.voxels.dtype == np.float32 and np.allclose(vol.voxels, body_voxels() * 0.5 - 512 + 0.0)

    nib.save(nib.Nifti1Image(raw[..., None], matrix()), tmp_path / "single.nii.gz")
    assert load_ct(tmp_path / "single.nii.gz").voxels.shape == (12, 32, 32)
    nib.save(nib.Nifti1Image(np.stack([raw, raw], axis=-1), matrix()), tmp_path / "4d.nii.gz")
    with pytest.raises(InputError, match="4D"):
        load_ct(tmp_path / "4d.nii.gz")

    nib.save(nib.Nifti1Image(raw, matrix()), tmp_path / "mr_like.nii.gz")  # positive, no air
    mr = load_ct(tmp_path / "mr_like.nii.gz")
    assert mr.metadata["looks_like_ct"] is False and "may not be a CT" in mr.metadata["warnings"][0]


def test_gzipped_nifti_1_and_2_big_endian_and_multi_member_read_like_nibabel(tmp_path):
    import gzip

    raw = body_voxels().T.copy()
    big_endian = nib.Nifti1Image(raw.astype(">i2"), matrix())
    nib.save(big_endian, tmp_path / "be.nii.gz")
    nib.save(nib.Nifti2Image(raw, matrix((0.7, 0.7, 3.0))), tmp_path / "two.nii.gz")
    for name in ("be.nii.gz", "two.nii.gz"):
        vol = load_ct(tmp_path / name)
        expected = nib.load(tmp_path / name)
        assert np.array_equal(vol.voxels, np.asanyarray(expected.dataobj).T) and np.allclose(vol.ijk_to_ras, expected.affine)
    # a gzip file of two members (concatenated streams, as some tools write) is read whole
    plain = gzip.decompress((tmp_path / "be.nii.gz").read_bytes())
    (tmp_path / "members.nii.gz").write_bytes(gzip.compress(plain[:1000]) + gzip.compress(plain[1000:]))
    assert np.array_equal(load_ct(tmp_path / "members.nii.gz").voxels, body_voxels())
    (tmp_path / "cut.nii.gz").write_bytes((tmp_path / "be.nii.gz").read_bytes()[:-200])
    with pytest.raises(InputError, match="cannot read NIfTI"):
        load_ct(tmp_path / "cut.nii.gz")
    (tmp_path / "notnifti.nii.gz").write_bytes(gzip.compress(b"x" * 400))
    with pytest.raises(InputError, match="not a NIfTI file"):
        load_ct(tmp_path / "notnifti.nii.gz")


def test_nrrd_spaces_are_converted_to_ras(tmp_path):
    data = body_voxels().T  # [i, j, k]
    header = {"space directions": np.diag([0.8, 0.9, 2.5]), "space origin": np.array([5.0, 6.0, 7.0])}
    nrrd.write(str(tmp_path / "lps.nrrd"), data, {**header, "space": "left-posterior-superior"})
    nrrd.write(str(tmp_path / "ras.nhdr"), data, {**header, "space": "RAS"})
    lps, ras = load_ct(tmp_path / "lps.nrrd"), load_ct(tmp_path / "ras.nhdr")
    assert np.array_equal(lps.voxels, body_voxels()) and np.array_equal(ras.voxels, body_voxels())
    assert np.allclose(lps.ijk_to_ras, matrix((-0.8, -0.9, 2.5), origin=(-5, -6, 7)))
    assert np.allclose(ras.ijk_to_ras, matrix((0.8, 0.9, 2.5), origin=(5, 6, 7)))

    four = {**header, "space": "RAS", "kinds": ["list", "domain", "domain", "domain"],
            "space directions": np.vstack([np.full(3, np.nan), header["space directions"]])}
    nrrd.write(str(tmp_path / "list1.nrrd"), data[None], four)
    assert np.array_equal(load_ct(tmp_path / "list1.nrrd").voxels, body_voxels())
    nrrd.write(str(tmp_path / "list2.nrrd"), np.stack([data, data]), four)
    with pytest.raises(InputError, match="single 3D volume"):
        load_ct(tmp_path / "list2.nrrd")


# --- round trips -------------------------------------------------------------------------------
ROUND_TRIP_MATRICES = {
    "lps_style": matrix((0.8, 0.8, 2.5), np.diag([-1, -1, 1]), (120.0, 95.0, -300.0)),
    "k_inferior": matrix((0.7, 0.75, 3.0), np.diag([-1, 1, -1]), (0.0, 0.0, 50.0)),
    "oblique": matrix((0.9, 0.6, 1.25), rotation([1, 2, 3], 25), (-3.0, 4.0, 5.0)),
}


@pytest.mark.parametrize("name", ROUND_TRIP_MATRICES)
@pytest.mark.parametrize("fmt", ["nii.gz", "nrrd", "dicom"])
def test_round_trip_is_exact(tmp_path, name, fmt):
    vol = volume(m=ROUND_TRIP_MATRICES[name])
    target = tmp_path / ("series" if fmt == "dicom" else f"vol.{fmt}")
    {"nii.gz": write_nifti, "nrrd": write_nrrd, "dicom": write_dicom_series}[fmt](vol, target)
    loaded = load_ct(target)
    assert loaded.voxels.dtype == np.int16 and np.array_equal(loaded.voxels, vol.voxels)
    assert np.allclose(loaded.ijk_to_ras, vol.ijk_to_ras, atol=1e-6)
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary files left


def test_dicom_round_trip_of_left_handed_volume_keeps_physical_positions(tmp_path):
    m = matrix((0.7, 0.7, 3.0), np.diag([1, 1, -1]))  # RAS-style with k inferior: slices come back reversed
    vol = volume(m=m)
    write_dicom_series(vol, tmp_path)
    loaded = load_ct(tmp_path)
    assert np.array_equal(loaded.voxels, vol.voxels[::-1])
    assert np.allclose(loaded.ras_of_ijk([3, 4, 0]), vol.ras_of_ijk([3, 4, 11]))
    assert loaded.superior_step == 1


def test_dicom_writer_geometry_tags(tmp_path):
    vol = volume(m=ROUND_TRIP_MATRICES["lps_style"])
    files = write_dicom_series(vol, tmp_path, series_description="test", start_instance=101)
    ds = pydicom.dcmread(files[2])
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert int(ds.InstanceNumber) == 103 and ds.Modality == "CT" and ds.SeriesDescription == "test"
    assert [float(v) for v in ds.ImagePositionPatient] == pytest.approx([-120.0, -95.0, -295.0])
    assert [float(v) for v in ds.ImageOrientationPatient] == pytest.approx([1, 0, 0, 0, 1, 0])
    assert [float(v) for v in ds.PixelSpacing] == pytest.approx([0.8, 0.8])
    assert float(ds.SliceThickness) == pytest.approx(2.5)
    assert np.array_equal(ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept), vol.voxels[2])


def test_float_voxels_round_trip(tmp_path):
    vol = CTVolume(body_voxels().astype(np.float32) * 0.37 + 0.123, matrix())
    write_nifti(vol, tmp_path / "f.nii")
    write_nrrd(vol, tmp_path / "f.nrrd")
    write_dicom_series(vol, tmp_path / "dcm")
    assert np.array_equal(load_ct(tmp_path / "f.nii").voxels, vol.voxels)
    assert np.array_equal(load_ct(tmp_path / "f.nrrd").voxels, vol.voxels)
    dicom = load_ct(tmp_path / "dcm")
    slope = float(pydicom.dcmread(next((tmp_path / "dcm").iterdir())).RescaleSlope)
    assert dicom.voxels.dtype == np.float32 and np.abs(dicom.voxels - vol.voxels).max() <= slope * 0.51 + 1e-3


def test_writers_refuse_to_overwrite(tmp_path):
    first, second = volume(), volume(seed=5)
    for writer, name in ((write_nifti, "v.nii.gz"), (write_nrrd, "v.nrrd")):
        writer(first, tmp_path / name)
        with pytest.raises(FileExistsError):
            writer(second, tmp_path / name)
        assert np.array_equal(load_ct(tmp_path / name).voxels, first.voxels)
        writer(second, tmp_path / name, overwrite=True)
        assert np.array_equal(load_ct(tmp_path / name).voxels, second.voxels)
    uid = generate_uid()
    write_dicom_series(first, tmp_path / "dcm", series_uid=uid)
    with pytest.raises(FileExistsError):
        write_dicom_series(second, tmp_path / "dcm", series_uid=uid)
    with pytest.raises(ValueError, match=r"\.nrrd"):
        write_nrrd(first, tmp_path / "v.nhdr")
