"""The RetinaNet network: the paper's structure from torchvision parts, anchors, loss, checkpoints."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torchvision.models.detection.retinanet import RetinaNetHead  # noqa: E402

from trt_mass.model.network import RetinaNetNetwork, view_anchors  # noqa: E402
from trt_mass.spec import ModelSpec  # noqa: E402


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_structure_follows_the_paper(arch: str) -> None:
    network = RetinaNetNetwork(ModelSpec(arch=arch, head_width=64))
    assert isinstance(network.head, RetinaNetHead)
    extra = network.backbone.fpn.extra_blocks
    assert extra.use_P5 is False, "P6 comes from C5"
    c5 = 2048 if arch == "resnet50" else 512
    assert extra.p6.in_channels == c5 and extra.p7.in_channels == 64
    cls_head = network.head.classification_head
    assert len([m for m in cls_head.conv.modules() if isinstance(m, torch.nn.Conv2d)]) == 4
    assert cls_head.num_anchors == 9 and cls_head.num_classes == 1
    views = torch.rand(2, 1, 128, 96)
    with torch.no_grad():
        logits, deltas = network.eval()(views)
    anchors = view_anchors((128, 96))
    assert logits.shape == (2, anchors.shape[0], 1) and deltas.shape == (2, anchors.shape[0], 4)


def test_anchors_use_exact_strides_and_paper_sizes() -> None:
    anchors = view_anchors((256, 224))  # 224 is not a multiple of 128
    levels = [(32, 28), (16, 14), (8, 7), (4, 4), (2, 2)]
    assert anchors.shape[0] == 9 * sum(h * w for h, w in levels)
    p3 = anchors[: 9 * 32 * 28].reshape(32, 28, 9, 4)
    centres = (p3[..., :2] + p3[..., 2:]) / 2
    assert torch.allclose(centres[0, 1, 0] - centres[0, 0, 0], torch.tensor([8.0, 0.0]))
    square = p3[0, 0, 3:6]  # ratio 1.0: sizes 32, 2^(1/3)*32, 2^(2/3)*32
    widths = square[:, 2] - square[:, 0]
    assert torch.allclose(widths, torch.tensor([32.0, 40.0, 50.0]), atol=1.01)
    p7 = anchors[-9 * 4 :].reshape(2, 2, 9, 4)
    p7_centres = (p7[..., :2] + p7[..., 2:]) / 2
    assert torch.allclose(p7_centres[0, 1, 0] - p7_centres[0, 0, 0], torch.tensor([128.0, 0.0]))


def test_focal_loss_trains() -> None:
    torch.manual_seed(0)
    network = RetinaNetNetwork(ModelSpec(arch="resnet18", head_width=32)).train()
    anchors = view_anchors((128, 128))
    views = torch.rand(2, 1, 128, 128)
    targets = [{"boxes": torch.tensor([[20.0, 30.0, 70.0, 90.0]]), "labels": torch.tensor([0])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    first = None
    for _ in range(5):
        losses = network.loss(views, targets, anchors)
        total = losses["classification"] + losses["bbox_regression"]
        first = first if first is not None else float(total)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    assert torch.isfinite(total) and float(total) < first
