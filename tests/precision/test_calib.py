"""Calibration manifests: stratified choice, content hash, refusals."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trt_mass.datasets.synth import write_phantoms
from trt_mass.errors import ConfigError, InputError
from trt_mass.precision.calib import CanvasReader, allocate, load_manifest, make_manifest
from trt_mass.spec import TileGeometry


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("calib-phantoms")
    write_phantoms(folder, 10, seed=21, scale=0.05, normal_fraction=0.4)
    return folder


def _copy(folder: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "images"
    shutil.copytree(folder, copy)
    return copy


def test_manifest_lists_hashed_images_and_strata(phantoms: Path, tmp_path: Path) -> None:
    calibration = make_manifest(str(phantoms), 6, 3, tmp_path / "calib" / "set.toml")
    loaded = load_manifest(tmp_path / "calib" / "set.toml")
    assert loaded.content_sha256 == calibration.content_sha256
    assert loaded.root == phantoms.resolve()
    assert len(loaded.images) == 6 and all(len(i.sha256) == 64 for i in loaded.images)
    findings = {image.stratum.split("|")[0] for image in loaded.images}
    assert findings == {"mass", "normal"}  # both kinds chosen although the count is small
    assert sum(s["chosen"] for s in loaded.strata.values()) == 6
    assert sum(s["available"] for s in loaded.strata.values()) == 10
    assert all("|" in s and s.split("|")[1] != "unknown" for s in loaded.strata)  # vendor from the DICOM header
    loaded.verify()
    again = make_manifest(str(phantoms), 6, 3, tmp_path / "again.toml")
    assert again.content_sha256 == calibration.content_sha256  # deterministic for a seed


def test_manifest_hash_changes_when_an_image_changes(phantoms: Path, tmp_path: Path) -> None:
    images = _copy(phantoms, tmp_path)
    manifest = tmp_path / "set.toml"
    before = make_manifest(str(images), 10, 0, manifest)
    target = images / before.images[0].path
    dataset = pydicom.dcmread(target)
    pixels = dataset.pixel_array.copy()
    pixels[0, 0] ^= 1  # one pixel, one bit
    dataset.PixelData = pixels.tobytes()
    dataset.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    dataset.save_as(target)
    with pytest.raises(InputError, match=target.name + ".*changed since"):
        load_manifest(manifest).verify()
    after = make_manifest(str(images), 10, 0, tmp_path / "after.toml")
    assert after.content_sha256 != before.content_sha256
    target.unlink()
    with pytest.raises(InputError, match="missing"):
        load_manifest(tmp_path / "after.toml").verify()


def test_an_unreadable_chosen_image_is_named_before_the_manifest_is_written(phantoms: Path, tmp_path: Path) -> None:
    images = _copy(phantoms, tmp_path)
    broken = sorted(images.glob("*.dcm"))[1]
    broken.write_bytes(broken.read_bytes()[:600])  # cut short by a failed copy
    manifest = tmp_path / "set.toml"
    count = len(list(images.glob("*.dcm")))
    with pytest.raises(ConfigError, match=rf"1 chosen calibration image\(s\) cannot be read: .*{broken.name}"):
        make_manifest(str(images), count, 0, manifest)
    assert not manifest.exists()


def test_hand_edited_manifest_is_refused(phantoms: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "set.toml"
    make_manifest(str(phantoms), 4, 0, manifest)
    text = manifest.read_text()
    first_hash = text.split('sha256 = "')[2][:64]  # [1] is the content hash, [2] the first image
    manifest.write_text(text.replace(first_hash, "0" * 64))
    with pytest.raises(ConfigError, match="does not match the listed images"):
        load_manifest(manifest)
    manifest.write_text("not = [toml")
    with pytest.raises(ConfigError, match="not a valid TOML"):
        load_manifest(manifest)
    with pytest.raises(ConfigError, match="no such"):
        load_manifest(tmp_path / "absent.toml")
    manifest.write_text('[calibration]\nformat = "1"\n')
    with pytest.raises(ConfigError, match="manifest format '1', this trt_mass reads 1"):
        load_manifest(manifest)
    manifest.write_text("calibration = 5\n")
    with pytest.raises(ConfigError, match="malformed manifest"):
        load_manifest(manifest)


def test_plain_folder_without_labels_and_bad_sources(tmp_path: Path, phantoms: Path) -> None:
    images = _copy(phantoms, tmp_path)
    (images / "truth.csv").unlink()
    calibration = make_manifest(str(images), 3, 0, tmp_path / "plain.toml")
    assert all(image.stratum.startswith("unknown|") for image in calibration.images)
    with pytest.raises(ConfigError, match="not a folder"):
        make_manifest(str(tmp_path / "nowhere"), 3, 0, tmp_path / "x.toml")
    with pytest.raises(ConfigError, match="at least 1"):
        make_manifest(str(images), 0, 0, tmp_path / "x.toml")
    with pytest.raises(ConfigError, match="only 10 images"):
        make_manifest(str(images), 11, 0, tmp_path / "x.toml")


def test_reader_feeds_the_inference_canvas(phantoms: Path, tmp_path: Path) -> None:
    from trt_mass.geometry import CanvasBuilder
    from trt_mass.inputs.files import read_image

    calibration = make_manifest(str(phantoms), 3, 0, tmp_path / "set.toml")
    geometry = TileGeometry(128, 96, 5)
    reader = CanvasReader(calibration, geometry, "uint16")
    feeds = []
    while (feed := reader.get_next()) is not None:
        feeds.append(feed["canvas"])
    assert len(feeds) == len(reader) == 3
    builder = CanvasBuilder(geometry, "uint16")
    builder.fill(read_image(calibration.paths()[1]).pixels)
    assert (feeds[1] == builder.canvas).all()
    reader.set_range(2, 3)
    last = reader.get_next()
    assert last is not None and (last["canvas"] == feeds[2]).all() and reader.get_next() is None


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text("abcdef", min_size=1, max_size=3), st.integers(1, 40), min_size=1, max_size=8),
       st.integers(1, 120))
def test_allocation_is_proportional_and_complete(sizes: dict[str, int], count: int) -> None:
    quota = allocate(sizes, count)
    assert sum(quota.values()) == min(count, sum(sizes.values()))
    assert all(0 <= quota[name] <= sizes[name] for name in sizes)
    if count >= len(sizes):
        assert all(quota[name] >= 1 for name in sizes)
