"""Training: augmentation geometry, a short run on phantoms, and checkpoint -> export -> ONNX Runtime parity."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.helpers import match_as_sets  # noqa: E402
from trt_mass.datasets.synth import write_phantoms  # noqa: E402
from trt_mass.errors import ConfigError  # noqa: E402
from trt_mass.model.checkpoint import (  # noqa: E402
    load_checkpoint,
    random_network,
    save_checkpoint,
)
from trt_mass.model.graph import EngineGraph  # noqa: E402
from trt_mass.model.train import (  # noqa: E402
    CachedImage,
    RunClock,
    TrainConfig,
    _orient,
    format_duration,
    make_views,
    scheduled_lr,
    train,
)
from trt_mass.runners.ort import OnnxRuntimeRunner  # noqa: E402
from trt_mass.spec import GraphSpec, ModelSpec, TileGeometry  # noqa: E402


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
@pytest.mark.parametrize("flip", [False, True])
def test_orient_moves_boxes_with_the_pixels(turns: int, flip: bool) -> None:
    view = np.zeros((40, 60), np.uint16)
    view[5:15, 20:35] = 1000  # the box [20, 5, 35, 15]
    turned, boxes = _orient(view, np.array([[20.0, 5.0, 35.0, 15.0]]), turns, flip)
    rows, cols = np.nonzero(turned)
    assert boxes.tolist() == [[cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]]


def test_cosine_schedule_decays_from_the_lr_to_zero_and_constant_stays(tmp_path: Path) -> None:
    fractions = np.linspace(0.0, 1.0, 11)
    cosine = [scheduled_lr(2e-4, "cosine", f) for f in fractions]
    assert cosine[0] == pytest.approx(2e-4) and cosine[5] == pytest.approx(1e-4) and cosine[-1] == pytest.approx(0.0)
    assert (np.diff(cosine) < 0).all(), "strictly decreasing"
    assert {scheduled_lr(2e-4, "constant", f) for f in fractions} == {2e-4}
    with pytest.raises(ConfigError, match="--lr-schedule"):
        TrainConfig(data=("x",), out_dir=tmp_path, lr_schedule="step")


def test_run_clock_counts_steps_or_the_time_budget_resumed_time_included() -> None:
    by_steps = RunClock(epochs=4, time_budget_s=None)
    assert by_steps.fraction(1, 5, 10) == pytest.approx(0.375) and not by_steps.expired()
    by_time = RunClock(epochs=4, time_budget_s=100.0, spent_before_s=50.0)
    assert by_time.fraction(0, 0, 10) == pytest.approx(0.5, abs=0.01), "the resumed run's seconds count"
    assert not by_time.expired() and RunClock(4, 100.0, spent_before_s=100.0).expired()


def test_run_clock_remaining_time_goes_by_this_process_pace_from_the_resumed_epoch() -> None:
    resumed = RunClock(epochs=10, time_budget_s=None, start_epoch=4)  # 4 of 10 epochs done before
    assert resumed.remaining_s(0.4) is None, "no pace before a step of this process"
    resumed._started -= 60.0  # this process: one epoch (a tenth of the run) in 60 s
    assert resumed.remaining_s(0.5) == pytest.approx(300.0, rel=0.01), "5 epochs left at 60 s each"
    assert resumed.remaining_s(1.0) == pytest.approx(0.0)
    budget = RunClock(epochs=1000, time_budget_s=100.0, spent_before_s=30.0)
    assert budget.remaining_s(0.3) == pytest.approx(70.0, abs=1.0), "a time budget: what is left of it"
    assert [format_duration(s) for s in (42.4, 720.0, 3 * 3600 + 5 * 60)] == ["42 s", "12 min", "3 h 05 min"]


def test_time_budget_ends_the_run_checkpointed_and_resume_keeps_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_phantoms(data, 3, seed=22, scale=0.05, normal_fraction=0.0)
    config = TrainConfig(data=(str(data),), out_dir=tmp_path / "run", spec=ModelSpec(arch="resnet18", head_width=16),
                         geometry=TileGeometry(64, 64, 5), epochs=1000, lr=1e-3, batch_size=4, time_budget_s=1.5)
    last = train(config, progress=False)
    _, extra = load_checkpoint(last)
    assert 1 <= extra["epoch"] < 1000 and extra["time_budget_spent"] and extra["trained_seconds"] >= 1.5
    assert extra["time_budget_s"] == 1.5
    resumed = TrainConfig(**{**config.__dict__, "resume": True})
    assert train(resumed, progress=False) == last and load_checkpoint(last)[1]["epoch"] == extra["epoch"], \
        "a spent budget is not trained on"
    longer = TrainConfig(**{**config.__dict__, "resume": True, "time_budget_s": extra["trained_seconds"] + 1.0})
    assert load_checkpoint(train(longer, progress=False))[1]["epoch"] > extra["epoch"], "a larger budget goes on"
    with pytest.raises(ConfigError, match="--time-budget"):
        TrainConfig(data=("x",), out_dir=tmp_path, time_budget_s=0.0)


def test_views_have_the_tile_shape_and_keep_lesions() -> None:
    geometry = TileGeometry(128, 96, 5)
    canvas = np.zeros(geometry.canvas_hw, np.uint16)
    canvas[100:140, 150:180] = 50000
    image = CachedImage(canvas, np.array([[150.0, 100.0, 180.0, 140.0]]))
    views = make_views(image, geometry, np.random.default_rng(0), random_tiles=2)
    assert len(views) == 1 + 1 + 2
    for view, boxes in views:
        assert view.shape == (128, 96)
        for x1, y1, x2, y2 in boxes:
            assert view[int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))].mean() > 10000
    assert len(views[1][1]) == 1, "the lesion-centred section contains its lesion"


def test_train_checkpoint_export_parity(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_phantoms(data, 4, seed=21, scale=0.05, normal_fraction=0.0)
    out = tmp_path / "run"
    cli = [sys.executable, "-m", "trt_mass.cli"]
    subprocess.run([*cli, "train", "--data", str(data), "--out", str(out), "--arch", "resnet18", "--head-width", "16",
                    "--tile", "128x96", "--epochs", "2", "--lr", "1e-3", "--batch-size", "4"], check=True)
    network, extra = load_checkpoint(out / "last.pt")
    assert extra["epoch"] == 2 and (out / "epoch001.pt").exists() and np.isfinite(extra["loss"])
    subprocess.run([*cli, "train", "--data", str(data), "--out", str(out), "--arch", "resnet18", "--head-width", "16",
                    "--tile", "128x96", "--epochs", "3", "--lr", "1e-3", "--resume"], check=True)
    network, extra = load_checkpoint(out / "last.pt")
    assert extra["epoch"] == 3, "resume continued from epoch 2"
    onnx_path = tmp_path / "trained.onnx"
    mismatch = subprocess.run([*cli, "export", str(out / "last.pt"), "--tile", "256x224", "-o", str(onnx_path)],
                              capture_output=True, text=True)
    assert mismatch.returncode == 2 and "trained with --tile 128x96" in mismatch.stderr
    foreign = subprocess.run([*cli, "export", str(out / "last.pt"), "--arch", "resnet50", "-o", str(onnx_path)],
                             capture_output=True, text=True)
    assert foreign.returncode == 2 and "--arch: only with --init random" in foreign.stderr
    for extra_args, message in ((["--arch", "resnet50"], "not the"), (["--backbone-weights", str(out / "last.pt")],
                                                                        "give one of them")):
        refused = subprocess.run([*cli, "train", "--data", str(data), "--out", str(tmp_path / "tuned"), "--init",
                                  str(out / "last.pt"), "--tile", "128x96", "--epochs", "1", *extra_args],
                                 capture_output=True, text=True)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
    assert not (tmp_path / "tuned" / "last.pt").exists()
    upper = subprocess.run([*cli, "export", str(out / "last.pt"), "--tile", "128X96", "-o", str(tmp_path / "u.onnx"),
                            "--network-only"], capture_output=True, text=True)
    assert "trained with" not in upper.stderr, "128X96 is the tile it was trained with"
    subprocess.run([*cli, "export", str(out / "last.pt"), "-o", str(onnx_path)], check=True)  # tile as trained
    # The trained weights through ONNX Runtime give the PyTorch graph's detections.
    spec = GraphSpec(geometry=TileGeometry(128, 96, 5))
    canvas = np.random.default_rng(3).integers(0, 65535, size=(1, 1, *spec.geometry.canvas_hw), dtype=np.uint16)
    with torch.no_grad():
        want_boxes, want_scores = EngineGraph(network, spec).eval()(
            torch.from_numpy(canvas.astype(np.int32)).to(torch.uint16))
    with OnnxRuntimeRunner(onnx_path) as runner:
        assert runner.metadata.graph_spec.view_selection == "tissue", "exports select views by default"
        got = runner.infer({"canvas": canvas, "view_index": np.arange(26, dtype=np.int32)})
    match_as_sets(got["boxes"], got["scores"], want_boxes.numpy(), want_scores.numpy(), box_tol=2e-2, score_tol=1e-4)


def test_validation_fold_picks_the_epoch_and_hard_negatives_join_the_next(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_phantoms(data, 12, seed=23, scale=0.05, normal_fraction=0.5)  # 3 patients: folds 0, 2 and 2
    out = tmp_path / "run"
    firing = tmp_path / "firing.pt"  # scores about 0.5 everywhere, still after an epoch at a low lr
    save_checkpoint(firing, random_network(ModelSpec(arch="resnet18", head_width=16), seed=0, prior=0.5))
    common = dict(data=(str(data),), out_dir=out, spec=ModelSpec(arch="resnet18", head_width=16),
                  geometry=TileGeometry(128, 96, 5), folds=3, fold=1, init=firing, lr=1e-5, batch_size=4)
    with pytest.raises(ConfigError, match="differ from --fold 1"):
        TrainConfig(**common, val_fold=1)
    train(TrainConfig(**common, val_fold=0, epochs=2, hard_negatives=2), progress=False)
    history = json.loads((out / "history.json").read_text())
    epochs = history["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert all(0.0 <= e["validation"]["tpr_at_fppi"]["1.0"] <= 1.0 and e["validation"]["images"] == 4 for e in epochs)
    keys = [[e["validation"]["tpr_at_fppi"]["1.0"], np.mean(list(e["validation"]["tpr_at_fppi"].values()))]
            for e in epochs]
    best = history["best"]["epoch"]
    assert keys.index(max(keys)) == best - 1, "best: the first epoch with the highest figures"
    _, extra = load_checkpoint(out / "best.pt")
    assert extra["epoch"] == best and extra["val_fold"] == 0 and extra["test_fold"] == 1
    assert extra["validation"]["tpr_at_fppi"] == epochs[best - 1]["validation"]["tpr_at_fppi"]
    assert epochs[0]["hard_negatives"] == 0, "nothing is mined before the first epoch"
    assert 0 < epochs[1]["hard_negatives"] <= 2 * 5, "at most 2 per training image without a mass"
    assert epochs[1]["views"] == epochs[0]["views"] + epochs[1]["hard_negatives"], "each becomes one more view"


@pytest.mark.parametrize(("changes", "message"), [
    ({"epochs": 0}, "--epochs must be at least 1"),
    ({"batch_size": 0}, "--batch-size must be at least 1"),
    ({"lr": float("nan")}, "--lr must be a finite number > 0"),
    ({"lr": float("inf")}, "--lr must be a finite number > 0"),
    ({"lr": -1.0}, "--lr must be a finite number > 0"),
    ({"time_budget_s": float("nan")}, "--time-budget must be a finite number"),
    ({"time_budget_s": float("inf")}, "--time-budget must be a finite number"),
    ({"device": "foo"}, "--device must be auto, cpu or cuda"),
    ({"folds": 0}, "--folds must be at least 2"),
    ({"data": ("d", "./d")}, "names one data set twice"),
])
def test_settings_that_would_train_nothing_or_diverge_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**{"data": ("d",), "out_dir": Path("out"), **changes})  # type: ignore[arg-type]


def test_fold_without_folds_is_refused_on_the_command_line(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "trt_mass.cli", "train", "--data", str(tmp_path), "--out",
                          str(tmp_path / "run"), "--fold", "3"], capture_output=True, text=True)
    assert run.returncode == 2 and "--fold needs --folds" in run.stderr


def test_resume_refuses_another_run_and_a_new_run_refuses_a_used_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_phantoms(data, 3, seed=22, scale=0.05, normal_fraction=0.0)
    config = TrainConfig(data=(str(data),), out_dir=tmp_path / "run", spec=ModelSpec(arch="resnet18", head_width=16),
                         geometry=TileGeometry(64, 64, 5), epochs=1, lr=1e-3, batch_size=4)
    train(config, progress=False)
    with pytest.raises(ConfigError, match=r"holds a run already .*--resume continues it"):
        train(config, progress=False)
    for changes, named in (({"geometry": TileGeometry(96, 96, 5)}, "geometry"),
                           ({"spec": ModelSpec(arch="resnet18", head_width=32)}, "model"),
                           ({"folds": 3, "fold": 1}, "folds")):
        other = TrainConfig(**{**config.__dict__, "epochs": 2, "resume": True, **changes})
        with pytest.raises(ConfigError, match=rf"--resume: .*last.pt is a run with other settings \({named} "):
            train(other, progress=False)
    leftover = config.out_dir / ".optimizer.pt.0a1b2c3d.tmp"  # a run killed while it saved
    leftover.write_bytes(b"\0" * 1024)
    spelled = TrainConfig(**{**config.__dict__, "data": (str(data) + "/.",), "epochs": 2, "resume": True})
    assert load_checkpoint(train(spelled, progress=False))[1]["epoch"] == 2, "the same run, its data spelled otherwise"
    assert not leftover.exists()
    history = json.loads((config.out_dir / "history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1, 2], "history is written before last.pt"


def test_a_diverged_run_stops_and_its_weights_are_not_exported(tmp_path: Path) -> None:
    from trt_mass.errors import ModelError
    from trt_mass.model.export import ExportOptions, export_onnx

    data = tmp_path / "data"
    write_phantoms(data, 2, seed=22, scale=0.05, normal_fraction=0.0)
    broken = random_network(ModelSpec(arch="resnet18", head_width=16), seed=0)
    with torch.no_grad():
        broken.head.classification_head.cls_logits.weight[0, 0, 0, 0] = float("nan")
    init = tmp_path / "nan.pt"
    save_checkpoint(init, broken)
    run = tmp_path / "run"
    with pytest.raises(ModelError, match="training diverged: the loss is nan at epoch 1, step 1"):
        train(TrainConfig(data=(str(data),), out_dir=run, geometry=TileGeometry(64, 64, 5), epochs=1, init=init),
              progress=False)
    assert not (run / "last.pt").exists(), "nothing of the diverged epoch is saved"
    with pytest.raises(ModelError, match=r"hold NaN or infinity .*cls_logits"):
        export_onnx(broken, "checkpoint:nan.pt", ExportOptions(GraphSpec(geometry=TileGeometry(64, 64, 5))),
                    tmp_path / "nan.onnx")
    assert not (tmp_path / "nan.onnx").exists()
