"""Output options never destroy what a command reads: -o / --json naming the model, a checkpoint, an image or a
manifest is refused before anything runs (exit 2), and the file is left as it was."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TinyModel
from trt_mass.atomic import refuse_overwriting
from trt_mass.datasets.synth import write_phantoms
from trt_mass.errors import ConfigError

CLI = [sys.executable, "-m", "trt_mass.cli"]


def test_refuse_overwriting_compares_files_not_spellings(tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"weights")
    os.symlink(model, tmp_path / "link.onnx")
    for spelling in (model, tmp_path / "link.onnx", tmp_path / "sub" / ".." / "model.onnx"):
        with pytest.raises(ConfigError, match="is the MODEL: writing it would destroy the input"):
            refuse_overwriting({"-o": spelling}, {"the MODEL": model})
    with pytest.raises(ConfigError, match="--json and --markdown both name"):
        refuse_overwriting({"--json": tmp_path / "r.txt", "--markdown": tmp_path / "r.txt"}, {})
    refuse_overwriting({"-o": tmp_path / "new.onnx", "--json": None}, {"the MODEL": model, "images": [None]})


def _refused(args: list[str], protected: Path) -> str:
    before = protected.read_bytes()
    run = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert protected.read_bytes() == before, f"{protected} was changed"
    return run.stderr


def test_outputs_that_name_an_input_are_refused(tiny_model: TinyModel, tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(tiny_model.onnx_path.read_bytes())
    images = tmp_path / "images"
    image = write_phantoms(images, 1, seed=1, scale=0.05, normal_fraction=0.0)[0]
    assert "is the --model" in _refused(["bench", "--model", str(model), "--input", str(images), "--runs", "1",
                                         "--json", str(model)], model)
    assert "is an --input image" in _refused(["bench", "--model", str(model), "--input", str(images), "--runs", "1",
                                              "--json", str(image)], image)
    assert "is the MODEL" in _refused(["quantize", str(model), "--precision", "fp16", "--target", "tensorrt", "-o",
                                       str(model)], model)
    assert "is an image of the set's source" in _refused(["calib", "make", "--from", str(images), "--count", "1",
                                                          "-o", str(image)], image)
    checkpoint = tmp_path / "trained.pt"
    checkpoint.write_bytes(b"a checkpoint")
    assert "is the CHECKPOINT" in _refused(["export", str(checkpoint), "-o", str(checkpoint)], checkpoint)


def test_synth_refuses_a_folder_with_more_phantoms_than_it_would_list(tmp_path: Path) -> None:
    write_phantoms(tmp_path, 3, seed=1, scale=0.05)
    write_phantoms(tmp_path, 3, seed=1, scale=0.05)  # the same run again: fine (make demo does it)
    with pytest.raises(ConfigError, match=r"holds 1 phantom\(s\) of an earlier, larger run \(synth_0002.dcm"):
        write_phantoms(tmp_path, 2, seed=1, scale=0.05)
    with pytest.raises(ConfigError, match="normal fraction must be in"):
        write_phantoms(tmp_path / "other", 2, seed=1, scale=0.05, normal_fraction=2.0)
