"""Label files and the L3 range read from vertebra label maps."""

import json

import numpy as np
import pytest

from l3locator.errors import LabelError
from l3locator.labels import L3Label, l3_range_from_vertebra_map, read_label, write_label


def label(**overrides) -> L3Label:
    values = dict(case="c1", image="c1.nrrd", l3_slice_index=12, l3_slice_range=(10, 14), source="corrected", num_slices=30)
    return L3Label(**{**values, **overrides})


def test_round_trip_and_format_marker(tmp_path):
    path = write_label(label(annotator="jdoe"), tmp_path / "c1.l3.json")
    assert json.loads(path.read_text())["format"] == "l3locator-label"
    back = read_label(path)
    assert back.l3_slice_range == (10, 14) and back.annotator == "jdoe" and back.source == "corrected"


def test_never_overwrites_without_intent(tmp_path):
    path = write_label(label(), tmp_path / "c1.l3.json")
    with pytest.raises(LabelError, match="already exists"):
        write_label(label(l3_slice_index=11), path)
    assert read_label(path).l3_slice_index == 12  # the first label is intact
    write_label(label(l3_slice_index=11), path, overwrite=True)
    assert read_label(path).l3_slice_index == 11
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c1.l3.json"]  # no temporary files left


@pytest.mark.parametrize("bad", [dict(l3_slice_index=20), dict(l3_slice_range=(10, 40)), dict(source="guess")])
def test_inconsistent_labels_are_rejected(bad):
    with pytest.raises(LabelError):
        label(**bad)


def test_unreadable_label_files(tmp_path):
    (tmp_path / "x.l3.json").write_text("{not json")
    with pytest.raises(LabelError, match="not a readable"):
        read_label(tmp_path / "x.l3.json")
    (tmp_path / "y.l3.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(LabelError, match="not an L3Locator label"):
        read_label(tmp_path / "y.l3.json")
    with pytest.raises(LabelError, match="not found"):
        read_label(tmp_path / "z.l3.json")


def test_l3_range_is_where_l3_is_the_majority_label():
    labels = np.zeros((12, 10, 10), dtype=np.int16)
    labels[0:4] = 23  # L4 body
    labels[4:9] = 22  # L3 body
    labels[9:12] = 21  # L2 body
    labels[2:4, 8:10, 4:6] = 22  # L3 spinous process reaching down beside the L4 body: a minority
    assert l3_range_from_vertebra_map(labels) == (4, 8)
    assert l3_range_from_vertebra_map(np.where(labels == 22, 0, labels)) is None
    # A sliver of L3 that is never the majority still counts where present.
    sliver = np.full((3, 10, 10), 21, dtype=np.int16)
    sliver[0, 0, 0] = 22
    assert l3_range_from_vertebra_map(sliver) == (0, 0)


def test_atomic_writes_are_readable_by_others_never_replace_without_intent_and_leave_no_debris(tmp_path):
    import os
    import stat

    from l3locator.atomic import write_atomically

    target = tmp_path / "sub" / "case.l3.json"
    write_atomically(target, lambda tmp: open(tmp, "w").write("first"), overwrite=False)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # not mkstemp's owner-only 0600
    with pytest.raises(FileExistsError):
        write_atomically(target, lambda tmp: open(tmp, "w").write("second"), overwrite=False)
    assert target.read_text() == "first"

    def failing(tmp):
        open(tmp, "w").write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomically(target, failing)
    assert target.read_text() == "first"
    write_atomically(target, lambda tmp: open(tmp, "w").write("second"))
    assert target.read_text() == "second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["case.l3.json"]  # no temporary files left


def test_labels_are_strict_json(tmp_path):
    with pytest.raises(ValueError):
        write_label(label(l3_position_ras=[0.0, float("inf"), 1.0]), tmp_path / "c1.l3.json")
    assert list(tmp_path.iterdir()) == []
    path = write_label(label(l3_position_ras=[0.0, -20.5, 1.0]), tmp_path / "c1.l3.json")
    assert json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(name))["l3_position_ras"] == [0.0, -20.5, 1.0]


def test_annotation_files_are_told_apart_from_scans_by_name():
    from l3locator.labels import annotation_kind

    assert annotation_kind("a/case.l3.json") == "label"
    assert annotation_kind("case_vertebrae.nii.gz") == "vertebra label map"
    assert annotation_kind("case_vertebrae.NRRD") == "vertebra label map"
    assert annotation_kind("case_tissues.seg.nrrd") == "tissue label map"
    assert annotation_kind("scan_L3_tissues.nii.gz") == "tissue label map"
    for scan in ("case.nii.gz", "case.nrrd", "tissues.nii", "case_tissues_ct.nii.gz", "folder"):
        assert annotation_kind(scan) is None, scan
