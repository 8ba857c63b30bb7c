"""benchmarks/bench_demo_cv.py: which masses each fold's model found, by their MIAS class."""

from __future__ import annotations

from pathlib import Path


def _image(image_id: str, dets: list[list[float]], scores: list[float], gts: list[list[float]]) -> dict:
    return {"image_id": image_id, "patient_id": image_id, "det_boxes": dets, "det_scores": scores, "gt_boxes": gts}


def test_masses_found_at_each_folds_own_1fppi_point_by_class(tmp_path: Path) -> None:
    from benchmarks.bench_demo_cv import _class_line, by_mias_class

    (tmp_path / "mass_boxes.csv").write_text(
        "image,x1,y1,x2,y2,class,severity\n"
        "mdb001,10,10,50,50,CIRC,B\nmdb002,100,100,140,140,SPIC,M\nmdb003,0,0,40,40,SPIC,B\n")
    # Fold 0: two images, the false positive (0.8) on mdb002 leaves 1 FPPI at threshold 0.3, where
    # mdb001 (0.9) is found and mdb002 (hit at 0.3) too; fold 1: mdb003 has no detection near it.
    folds = [{"fold": 0, "images_results": [
                  _image("mdb001", [[10, 10, 50, 50]], [0.9], [[10, 10, 50, 50]]),
                  _image("mdb002", [[300, 300, 340, 340], [100, 100, 140, 140]], [0.8, 0.3], [[100, 100, 140, 140]])]},
             {"fold": 1, "images_results": [_image("mdb003", [[500, 500, 540, 540]], [0.7], [[0, 0, 40, 40]])]}]
    result = by_mias_class(folds, tmp_path)
    assert result["counts"] == {"CIRC": {"masses": 1, "found": 1}, "SPIC": {"masses": 2, "found": 1}}
    assert [(m["image_id"], m["fold"], m["hit_score"]) for m in result["missed"]] == [("mdb003", 1, None)]
    assert "SPIC 1 of 2" in _class_line(result) and "mdb003 (SPIC, 40 px, never hit)" in _class_line(result)


def test_the_run_note_names_distortions_in_the_continued_pre_training() -> None:
    from benchmarks.bench_demo_cv import _stopped_note

    settings = {"pretrained": "None", "continue_epochs": "22", "continue_lr": "0.0002",
                "continue_distortion_fraction": "0.4", "distortion_fraction": "0.0", "phantoms": "240"}
    note = _stopped_note({"settings": settings, "pretrain_epochs_done": 20, "folds": []})
    assert "then 22 more on twice the phantoms" in note
    assert "new phantoms of that stage with 0.4 of their masses drawn as stellate distortions" in note
    assert "fine-tuned on" not in note
    plain = _stopped_note({"settings": {**settings, "continue_distortion_fraction": "0.0"},
                           "pretrain_epochs_done": 20, "folds": []})
    assert "distortion" not in plain
