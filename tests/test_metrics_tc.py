"""TC: the metric on hand cases, label warping, the flow backends, and vpseg eval --metrics tc."""

import numpy as np
import pytest

from vpseg.flow import optical_flow, warp_labels
from vpseg.metrics.tc import TCAccumulator


def test_tc_hand_case(tiny_labels):
    acc = TCAccumulator(tiny_labels)
    acc.update(np.array([[0, 0, 1, 1]]), np.array([[0, 1, 1, 255]]), "v")
    # class 0: tp 1, row 2, column 1 -> 1/2; class 1: tp 1, row 2, column 2 -> 1/3;
    # the warped void (outside the frame) is a miss
    assert acc.result() == pytest.approx((1 / 2 + 1 / 3) / 2)
    acc.update(np.array([[0, 0]]), np.array([[0, 0]]), "w")
    assert acc.result(per_video=True) == pytest.approx(((1 / 2 + 1 / 3) / 2 + 1.0) / 2)


def test_warp_labels_moves_and_fills():
    labels = np.array([[1, 2, 3, 4]])
    flow = np.zeros((1, 4, 2), np.float32)
    flow[..., 0] = 1.0  # pixel x of frame t is at x + 1 in frame t + 1
    assert warp_labels(labels, flow, fill=255).tolist() == [[2, 3, 4, 255]]


@pytest.mark.parametrize("backend", ["dis", "farneback"])
def test_flow_recovers_a_translation(backend):
    rng = np.random.default_rng(0)
    import cv2

    base = cv2.GaussianBlur(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8), (7, 7), 2)
    moved = np.roll(base, 3, axis=1)  # content moves 3 px to the right
    flow = optical_flow(base, moved, backend=backend, max_side=None)
    inner = flow[20:-20, 20:-20]
    assert np.median(inner[..., 0]) == pytest.approx(3.0, abs=0.5)
    assert np.median(inner[..., 1]) == pytest.approx(0.0, abs=0.5)
    with pytest.raises(ValueError, match="unknown flow backend"):
        optical_flow(base, moved, backend="pwc")


def test_eval_tc_needs_rgb(tmp_path, capsys):
    from PIL import Image

    from vpseg.cli.main import main

    for f in ("000000", "000001"):
        path = tmp_path / "0000" / f"{f}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)
    assert main(["eval", str(tmp_path), str(tmp_path), "--format", "kitti-step", "--metrics", "tc"]) == 2
    assert "TC needs the RGB frames" in capsys.readouterr().err


def test_raft_loads_local_weights_and_never_downloads(tmp_path):
    from vpseg.errors import InputError

    base = np.zeros((32, 48, 3), np.uint8)
    with pytest.raises(InputError, match="needs a local weights file"):
        optical_flow(base, base, backend="raft")
    torch = pytest.importorskip("torch")
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    path = tmp_path / "raft_small.pth"
    torch.save(raft_small(weights=None).state_dict(), path)  # a file the test makes
    with pytest.raises(InputError, match="not found"):
        optical_flow(base, base, backend="raft-small", weights=tmp_path / "missing.pth")
    with pytest.raises(InputError, match="not a RAFT state dict"):
        optical_flow(base, base, backend="raft", weights=path)  # small weights into large
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (128, 160, 3), dtype=np.uint8)
    flow = optical_flow(a, np.roll(a, 2, axis=1), backend="raft-small", weights=path, max_side=None)
    assert flow.shape == (128, 160, 2) and np.isfinite(flow).all()
