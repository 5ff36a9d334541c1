"""vpseg eval end to end: perfect predictions, noisy ones against the references, workers, errors."""

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from reference_metrics import stq_reference, vpq_reference
from vpseg.cli.main import main
from vpseg.core.labels import get_label_space
from vpseg.core.synthetic import SynthConfig, generate
from vpseg.evaluation import EvalConfig, evaluate
from vpseg.formats import get_format

KITTI = get_format("kitti-step")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Ground truth (3 videos x 7 frames) and a damaged prediction in the submission layout."""
    root = tmp_path_factory.mktemp("eval")
    labels = get_label_space("kitti-step")
    videos = [v.materialize() for v in generate(SynthConfig(height=40, width=64, frames=7), labels,
                                                  seed=11, videos=3)]
    rng = np.random.default_rng(0)
    with KITTI.open_writer(root / "gt", split="val") as writer:
        for v in videos:
            writer.write(v)
    preds = []
    for v in videos:
        frames = []
        for t, pan in enumerate(v.panoptic):
            p = np.roll(pan, 1 + t % 2, axis=1)  # shifted masks
            p = np.where(p == 13001, 13077, p)  # a renamed car track
            if t == 3:
                p = np.where(p % 1000 == 2, 11000 + 5, p)  # an id switch in one frame
            p[rng.random(p.shape) < 0.02] = 255000  # void predictions
            frames.append(p.astype(np.int32))
        preds.append(replace(v, panoptic=frames, rgb=None))
    with KITTI.open_writer(root / "tmp_pred", split="val") as writer:
        for v in preds:
            writer.write(v)
    shutil.move(root / "tmp_pred" / "panoptic_maps" / "val", root / "pred")
    return root, labels, videos, preds


def test_perfect_prediction_scores_one_everywhere(data, tmp_path):
    root, *_ = data
    out = tmp_path / "r.json"
    assert main(["eval", str(root / "gt"), str(root / "gt" / "panoptic_maps" / "val"), "--format",
                 "kitti-step", "--metrics", "stq,vpq,pq,semantic,vc,tracking", "--vc-n", "2,4",
                 "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["stq"] == {"STQ": 1.0, "AQ": 1.0, "SQ": 1.0}
    assert r["vpq"]["VPQ"] == 1.0 and set(r["vpq"]["per_k"]) == {"1", "2", "4", "6"}
    assert r["pq"]["PQ"] == 1.0 and r["semantic"]["mIoU"] == 1.0 and r["vc"] == {"2": 1.0, "4": 1.0}
    assert r["tracking"]["IDS"] == 0 and r["tracking"]["MOTSA"] == 1.0
    assert set(r["per_video"]) == {"0000", "0001", "0002"}


def test_noisy_prediction_equals_the_references(data):
    root, labels, videos, preds = data
    config = EvalConfig(metrics=("stq", "vpq"), vpq_ks=(1, 2, 4), vpq_names=("1", "2", "4"))
    r = evaluate(KITTI, root / "gt", root / "pred", config, split="val")
    pairs = [(list(v.panoptic), list(p.panoptic)) for v, p in zip(videos, preds, strict=True)]
    ref = stq_reference(pairs, labels)
    assert r["stq"]["STQ"] == pytest.approx(ref["STQ"], abs=1e-12)
    assert r["stq"]["AQ"] == pytest.approx(ref["AQ"], abs=1e-12)
    assert 0 < r["stq"]["STQ"] < 1
    ref_vpq = vpq_reference(pairs, labels, (1, 2, 4))
    for k in (1, 2, 4):
        stats = ref_vpq[k]
        pqs = [v[0] / (v[1] + 0.5 * v[2] + 0.5 * v[3]) for v in stats.values() if v[1] + v[2] + v[3]]
        assert r["vpq"]["per_k"][str(k)]["VPQ"] == pytest.approx(np.mean(pqs), abs=1e-9)


def test_workers_give_identical_numbers(data):
    root, *_ = data
    config = EvalConfig(metrics=("stq", "vpq", "pq", "semantic", "vc", "tracking"), vc_ns=(2, 3))
    one = evaluate(KITTI, root / "gt", root / "pred", config, split="val", workers=1)
    two = evaluate(KITTI, root / "gt", root / "pred", config, split="val", workers=2)
    assert one == two


def test_a_dask_cluster_gives_identical_numbers(data, tmp_path, capsys, monkeypatch):
    distributed = pytest.importorskip("distributed")
    import vpseg.evaluation

    monkeypatch.setattr(vpseg.evaluation, "DASK_CONNECT_TIMEOUT", 1.0)
    root, *_ = data
    config = EvalConfig(metrics=("stq", "vpq", "pq", "semantic", "vc", "tracking"), vc_ns=(2, 3))
    local = evaluate(KITTI, root / "gt", root / "pred", config, split="val")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        remote = evaluate(KITTI, root / "gt", root / "pred", config, split="val",
                          dask=cluster.scheduler_address)
        out = tmp_path / "r.json"
        assert main(["eval", str(root / "gt"), str(root / "pred"), "--format", "kitti-step",
                     "--split", "val", "--dask", cluster.scheduler_address, "--json", str(out)]) == 0
        workers = list(cluster.scheduler_info["workers"])
    assert remote == local and len(workers) == 2
    assert json.loads(out.read_text())["stq"] == local["stq"]
    assert main(["eval", str(root / "gt"), str(root / "pred"), "--format", "kitti-step",
                 "--split", "val", "--dask", "tcp://127.0.0.1:9"]) == 2
    assert "cannot reach the dask scheduler at 'tcp://127.0.0.1:9'" in capsys.readouterr().err


def test_missing_video_frame_and_size_mismatch_exit_2_without_json(data, tmp_path, capsys):
    root, *_ = data
    pred = tmp_path / "pred"
    shutil.copytree(root / "pred", pred)
    out = tmp_path / "r.json"
    args = ["eval", str(root / "gt"), str(pred), "--format", "kitti-step", "--split", "val",
            "--json", str(out)]
    (pred / "0001" / "000004.png").unlink()
    assert main(args) == 2
    assert "0001/000004.png (frame 000004): missing frame" in capsys.readouterr().err
    shutil.rmtree(pred / "0001")
    assert main(args) == 2
    assert "missing video '0001'" in capsys.readouterr().err
    shutil.copytree(root / "pred" / "0001", pred / "0001")
    for frame in (pred / "0002").glob("*.png"):
        Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(frame)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "0002/000000.png (frame 000000): prediction is 40x60, ground truth 40x64" in err
    assert not out.exists()


def test_unknown_metric_and_bad_k_list(data, capsys):
    root, *_ = data
    base = ["eval", str(root / "gt"), str(root / "pred"), "--format", "kitti-step"]
    assert main([*base, "--metrics", "stq,bogus"]) == 2
    assert "bogus" in capsys.readouterr().err
    assert main([*base, "--vpq-k", "1,x"]) == 2
    assert "--vpq-k" in capsys.readouterr().err


def test_cityscapes_preset_names_windows_by_frame_distance(data):
    root, *_ = data
    config = EvalConfig(metrics=("vpq",), vpq_ks=(1, 2), vpq_names=("0", "5"), vpq_stride=5)
    r = evaluate(KITTI, root / "gt", root / "gt" / "panoptic_maps" / "val", config, split="val")
    assert set(r["vpq"]["per_k"]) == {"0", "5"}
    assert r["vpq"]["VPQ"] == 1.0  # frames 0 and 5 of each 7-frame video: one window of 2


def test_vipseg_with_gt_json_elsewhere_and_pred_json(tmp_path):
    """The VIPSeg mask folder with its JSON given by --gt-json; a submission with --pred-json."""
    from vpseg.core.labels import get_label_space

    labels = get_label_space("vipseg")
    fmt = get_format("vipseg")
    video = next(generate(SynthConfig(height=32, width=48, frames=3), labels, seed=2, videos=1))
    with fmt.open_writer(tmp_path / "gt", split="val") as writer:
        writer.write(video)
    moved = tmp_path / "elsewhere.json"
    (tmp_path / "gt" / "panoptic_gt_VIPSeg.json").rename(moved)
    # the submission: pan_pred/ + a JSON in the official prediction schema under another name
    gt_json = json.loads(moved.read_text())
    shutil.copytree(tmp_path / "gt" / "panomasksRGB", tmp_path / "sub" / "pan_pred")
    (tmp_path / "sub" / "my_pred.json").write_text(json.dumps({"annotations": gt_json["annotations"]}))
    out = tmp_path / "r.json"
    assert main(["eval", str(tmp_path / "gt" / "panomasksRGB"), str(tmp_path / "sub"), "--format",
                 "vipseg", "--gt-json", str(moved), "--pred-json",
                 str(tmp_path / "sub" / "my_pred.json"), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["stq"]["STQ"] == 1.0
    assert main(["eval", str(tmp_path), str(tmp_path), "--format", "kitti-step", "--gt-json",
                 str(moved)]) == 2


def test_vipseg_stq_wrapper_quirk_is_an_option(tmp_path):
    """eval_stq_vspw.py numbers a video's segments from 0 in listing order, so a first-listed
    thing (here person track A) is crowd there; vpseg offers it as --stq-vipseg-wrapper."""
    from vpseg.core.labels import get_label_space
    from vpseg.core.video import Video

    labels = get_label_space("vipseg")
    fmt = get_format("vipseg")
    gt = [np.array([[60001, 60001, 60002, 60002]], np.int32)] * 2  # A A B B, twice
    pred = [np.array([[60011, 60011, 60002, 60002]], np.int32),
            np.array([[60012, 60012, 60002, 60002]], np.int32)]  # A's id switches
    for root, frames in (("gt", gt), ("pred", pred)):
        with fmt.open_writer(tmp_path / root, split="val") as writer:
            writer.write(Video(name="v", panoptic=frames, label_space=labels))
    plain = evaluate(fmt, tmp_path / "gt", tmp_path / "pred", EvalConfig(metrics=("stq",)))
    quirk = evaluate(fmt, tmp_path / "gt", tmp_path / "pred",
                     EvalConfig(metrics=("stq",), stq_vipseg_wrapper=True))
    assert plain["stq"]["AQ"] == pytest.approx((0.5 + 1.0) / 2)  # A: (1/4)(2·½ + 2·½)
    assert quirk["stq"]["AQ"] == 1.0  # A is crowd: only B counts
    assert quirk["config"]["stq_vipseg_wrapper"] is True
