"""Per-view NMS as exported: ONNX NonMaxSuppression over the whole view batch keeps what torchvision keeps."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import TinyModel
from trt_mass.merge_oracle import box_iou

torch = pytest.importorskip("torch")

from trt_mass.model.nms_op import view_nms  # noqa: E402


def test_view_nms_onnx_equals_torchvision(tiny_model: TinyModel) -> None:
    """Per-view NMS: the exported NonMaxSuppression keeps the same boxes as torchvision, per view."""
    rng = np.random.default_rng(3)
    views, count = 5, 400
    centres = rng.uniform(0, 500, (views, count, 2))
    sizes = rng.uniform(10, 80, (views, count, 2))
    boxes = torch.from_numpy(np.concatenate([centres - sizes / 2, centres + sizes / 2], 2).astype(np.float32))
    scores = torch.from_numpy(rng.uniform(0, 1, (views, count)).astype(np.float32))

    class Module(torch.nn.Module):
        def forward(self, b: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            return view_nms(b, s, 0.1, 0.1, 30)

    from trt_mass.model.nms_op import custom_translation_table

    program = torch.onnx.export(Module(), (boxes, scores), dynamo=True, opset_version=19,
                                custom_translation_table=custom_translation_table())
    assert program is not None
    import onnxruntime as ort

    session = ort.InferenceSession(program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (keep_onnx,) = session.run(None, {session.get_inputs()[0].name: boxes.numpy(),
                                      session.get_inputs()[1].name: scores.numpy()})
    keep_torch = Module()(boxes, scores).numpy()
    np.testing.assert_array_equal(keep_onnx, keep_torch)
    assert (keep_torch.sum(axis=1) <= 30).all() and keep_torch.sum() > views
    for view in range(views):  # survivors of one view do not overlap above the threshold
        kept = boxes[view][keep_torch[view] > 0].numpy()
        iou = box_iou(kept, kept) - np.eye(len(kept))
        assert iou.max() <= 0.1 + 1e-6
