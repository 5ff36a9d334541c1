"""Hugging Face transformers panoptic models as vpseg segmenters (``vpseg.models.hf_panoptic``).

Tiny Mask2Former, OneFormer and DETR models are built from their config classes with random
weights and saved with their processors, so every test loads them the way a user does, offline.
Random weights give arbitrary segments: tracking is checked on a static video and on a stand-in
network whose mask follows a moving square.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import astuple
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers reads it: nothing is downloaded
torch = pytest.importorskip("torch")
tf = pytest.importorskip("transformers")

from vpseg.cli.main import main  # noqa: E402
from vpseg.core.labels import LabelSpace, get_label_space, load_label_space  # noqa: E402
from vpseg.core.synthetic import SynthConfig, generate_video  # noqa: E402
from vpseg.errors import InputError  # noqa: E402
from vpseg.formats import get_format  # noqa: E402
from vpseg.models.hf_panoptic import (  # noqa: E402
    ARCHITECTURES,
    Architecture,
    HFPanopticModel,
    class_mapping,
    hf_label_space,
    load_hf_model,
    panoptic_segments,
)

torch.set_num_threads(1)

ID2LABEL = {0: "person", 1: "car", 2: "road", 3: "sky-other-merged"}  # HF COCO spellings
ARCHS = ("mask2former", "oneformer", "detr")
SIZE = {"shortest_edge": 64, "longest_edge": 128}


def _swin() -> object:
    return tf.SwinConfig(image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1],
                         num_heads=[1, 1, 2, 2], window_size=4,
                         out_features=["stage1", "stage2", "stage3", "stage4"])


def _confident(model: torch.nn.Module, num_labels: int) -> None:
    """At initialisation the class head scores every class near 1/(C+1), under the 0.5
    threshold: a steeper head ("no object" never best) gives confident segments, still random
    in shape."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and module.out_features == num_labels + 1:
                module.weight.mul_(40.0)
                module.bias[-1] = -30.0


def _tokenizer(folder):
    """A CLIP tokenizer from a tiny vocabulary (letters, alone and word-final), written here."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    vocab.update({c: len(vocab) + i for i, c in enumerate(letters)})
    vocab.update({c + "</w>": len(vocab) + i for i, c in enumerate(letters)})
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return tf.CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"))


def build_tiny(arch: str, folder, id2label: dict[int, str] = ID2LABEL, seed: int = 0) -> None:
    """Save a tiny random ``arch`` model and its processor in ``folder`` (what
    ``save_pretrained`` writes for a real one)."""
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = {"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}
    if arch == "mask2former":
        config = tf.Mask2FormerConfig(
            backbone_config=_swin(), feature_size=32, mask_feature_size=32, hidden_dim=32,
            encoder_feedforward_dim=64, encoder_layers=1, decoder_layers=2,
            num_attention_heads=2, dim_feedforward=64, num_queries=8, **names)
        model = tf.Mask2FormerForUniversalSegmentation(config)
        processor = tf.Mask2FormerImageProcessor(size=SIZE)
    elif arch == "oneformer":
        config = tf.OneFormerConfig(
            backbone_config=_swin(), num_queries=8, conv_dim=32, mask_dim=32, hidden_dim=32,
            encoder_feedforward_dim=64, encoder_layers=1, decoder_layers=2, num_attention_heads=2,
            dim_feedforward=64, query_dec_layers=1, text_encoder_width=32,
            text_encoder_num_layers=1, text_encoder_vocab_size=64,
            text_encoder_context_length=16, task_seq_len=16, max_seq_len=16, **names)
        model = tf.OneFormerForUniversalSegmentation(config)
        info = {str(k): {"name": v, "isthing": int(k < 2)} for k, v in id2label.items()}
        (folder / "class_info.json").write_text(json.dumps(info))
        image_processor = tf.OneFormerImageProcessor(
            size=SIZE, repo_path=str(folder), class_info_file="class_info.json",
            num_text=config.num_queries - config.text_encoder_n_ctx)
        processor = tf.OneFormerProcessor(image_processor=image_processor,
                                          tokenizer=_tokenizer(folder), max_seq_length=16,
                                          task_seq_length=16)
    else:
        backbone = tf.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 16, 32],
                                   depths=[1, 1, 1, 1],
                                   out_features=["stage1", "stage2", "stage3", "stage4"])
        config = tf.DetrConfig(use_timm_backbone=False, backbone_config=backbone, d_model=32,
                               encoder_layers=1, decoder_layers=1, encoder_attention_heads=8,
                               decoder_attention_heads=8, encoder_ffn_dim=64,
                               decoder_ffn_dim=64, num_queries=8, **names)
        model = tf.DetrForSegmentation(config)
        processor = tf.DetrImageProcessor(size=SIZE)
    _confident(model, len(id2label))
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """arch -> folder of its tiny saved model."""
    root = tmp_path_factory.mktemp("hf")
    for arch in ARCHS:
        build_tiny(arch, root / arch)
    return {arch: root / arch for arch in ARCHS}


@pytest.fixture(scope="module")
def video():
    """6 synthetic RGB frames, 64×128, in KITTI-STEP's label space."""
    cfg = SynthConfig(height=64, width=128, frames=6)
    return generate_video(cfg, get_format("kitti-step").default_label_space(), seed=3, index=0)


def _check_frames(frames, labels: LabelSpace, shape) -> None:
    div = labels.label_divisor
    for pan in frames:
        assert pan.shape == shape and pan.dtype == np.int32
        semantic, instance = pan // div, pan % div
        assert np.isin(semantic, [*labels.ids, labels.ignore_label]).all()
        assert not instance[~np.isin(semantic, labels.thing_ids)].any()  # only things have ids


# ---------------------------------------------------------------------------------------------
# label spaces


def test_coco_panoptic_label_space_has_the_official_classes():
    coco = get_label_space("coco-panoptic")
    assert len(coco) == 133 and len(coco.thing_ids) == 80
    assert coco[1].name == "person" and coco[1].isthing
    assert coco[200].name == "rug-merged" and not coco[200].isthing
    assert coco.by_name("traffic light").id == 10


def test_hf_names_match_coco_despite_spelling():
    names = ["person", "traffic-light", "fire_hydrant", "sky", "door-stuff", "wall", "N/A",
             "LABEL_7", "tree-merged", "playingfield"]
    labels = hf_label_space(dict(enumerate(names)), num_queries=100)
    assert labels.ids == tuple(range(len(names)))
    assert [c.name for c in labels.categories] == names
    assert labels.thing_ids == (0, 1, 2)  # person, traffic light, fire hydrant
    assert labels.ignore_label == 255 and labels.label_divisor == 1000
    assert labels[0].color == (220, 20, 60)  # COCO's person colour


def test_label_space_sizes_follow_the_model():
    many = hf_label_space({i: "N/A" if i else "person" for i in range(300)}, num_queries=2000)
    assert many.ignore_label == 300 and many.label_divisor == 10000


def test_unknown_classes_ask_for_a_label_space():
    with pytest.raises(InputError, match="--label-space") as info:
        hf_label_space({0: "person", 1: "gizmo"}, 10, source="models/x")
    assert "models/x" in str(info.value) and "gizmo" in str(info.value)
    given = LabelSpace.from_json({"name": "mine", "categories": [
        {"id": 5, "name": "Gizmo", "isthing": 1}, {"id": 6, "name": "person", "isthing": 0}]})
    labels = hf_label_space({0: "person", 1: "gizmo"}, 10, given=given)
    assert labels.thing_ids == (1,) and labels.ids == (0, 1)  # the model's ids, the user's things
    with pytest.raises(InputError, match="does not name 1"):
        hf_label_space({0: "person", 1: "gizmo", 2: "widget"}, 10, given=given)


# ---------------------------------------------------------------------------------------------
# post-processing and embeddings


def test_post_processing_keeps_the_query_of_each_segment_by_hand():
    """3 queries on a 4×6 image: no object, a person (left half), road (right half)."""
    logits = torch.full((3, 3), -10.0)
    logits[0, 2] = 10  # "no object"
    logits[1, 0] = 10  # person
    logits[2, 1] = 10  # road
    masks = torch.full((3, 4, 6), -10.0)
    masks[0] = 10  # everywhere, but dropped as "no object"
    masks[1, :, :3] = 10
    masks[2, :, 3:] = 10
    out = panoptic_segments(logits, masks, (4, 6), fuse={1})
    assert out.query.tolist() == [1, 2] and out.label.tolist() == [0, 1]
    assert (out.segmentation[:, :3] == 1).all() and (out.segmentation[:, 3:] == 2).all()


ALL_THINGS = LabelSpace.from_json({"name": "all-things", "categories": [
    {"id": k, "name": v, "isthing": 1} for k, v in ID2LABEL.items()]})


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("given", [None, ALL_THINGS], ids=["coco", "all-things"])
def test_post_processing_equals_the_processors_and_embeddings_are_their_queries(
        tiny, video, arch, given):
    """Random weights make few segments, of few classes: with every class a thing (no stuff
    fused) each segment is one query's, and the embedding check covers all of them."""
    model = load_hf_model(str(tiny[arch]), batch_size=3, label_space=given)
    frames = [np.asarray(f) for f in video.rgb[:3]]
    arch_of = ARCHITECTURES[model.architecture]
    kwargs = {"task_inputs": ["panoptic"] * 3} if arch_of.task else {}
    inputs = model.processor(images=frames, return_tensors="pt", **kwargs)
    with torch.no_grad():
        raw = model.model(**inputs)
    sizes = [f.shape[:2] for f in frames]
    theirs = model.processor.post_process_panoptic_segmentation(
        raw, label_ids_to_fuse=model.fuse, target_sizes=sizes)
    things_seen = 0
    for i, (result, feats) in enumerate(model.predict(frames)):
        ref = theirs[i]
        assert np.array_equal(result.segmentation, np.maximum(ref["segmentation"].numpy(), 0))
        first = {}
        for s in ref["segments_info"]:
            first.setdefault(s["id"], s)
        assert [first[k]["label_id"] for k in sorted(first)] == result.label.tolist()
        assert [first[k]["score"] for k in sorted(first)] == [round(s, 6) for s in result.score]
        # each segment's query: the one of highest score × mask probability on all its pixels
        logits = getattr(raw, arch_of.logits)[i]
        masks = getattr(raw, arch_of.masks)[i][None]
        if arch_of.mask_size:
            masks = torch.nn.functional.interpolate(masks, arch_of.mask_size, mode="bilinear")
        probs = torch.nn.functional.interpolate(masks.sigmoid(), sizes[i], mode="bilinear")[0]
        score, label = logits.softmax(-1).max(-1)
        kept = (label != logits.shape[-1] - 1) & (score > 0.5)
        weighted = torch.where(kept[:, None, None], probs * score[:, None, None], -1.0)
        best = weighted.argmax(0).numpy()
        for k, q in enumerate(result.query.tolist()):
            if result.label[k] not in model.fuse:  # stuff merges several queries
                assert (best[result.segmentation == k + 1] == q).all()
        # and the embedding of each thing segment is that query's decoder feature
        things, _ = model.frame_segments(result, feats)
        expected = getattr(raw, arch_of.queries)[i].numpy()
        assert expected.shape[0] == logits.shape[0]  # one feature per query
        thing_queries = result.query[np.isin(result.label, model.labels.thing_ids)]
        assert things.embedding is not None
        np.testing.assert_array_equal(things.embedding, expected[thing_queries])
        things_seen += len(things)
    if given is ALL_THINGS:
        assert things_seen > 0  # the check above ran on real segments


# ---------------------------------------------------------------------------------------------
# segmenting videos


@pytest.mark.parametrize("arch", ARCHS)
def test_segment_a_synthetic_video(tiny, video, arch):
    model = load_hf_model(str(tiny[arch]), batch_size=4)  # 6 frames: batches of 4 and 2
    assert model.default_tracker == "hila"
    assert model.labels.thing_ids == (0, 1) and model.labels.stuff_ids == (2, 3)
    frames = list(model.segment(iter(video.rgb), "hila"))
    assert len(frames) == 6
    _check_frames(frames, model.labels, (64, 128))


@pytest.mark.parametrize("arch", ARCHS)
def test_a_static_video_keeps_its_track_ids(tiny, video, arch):
    model = load_hf_model(str(tiny[arch]), batch_size=2, label_space=ALL_THINGS)
    frames = list(model.segment([video.rgb[0]] * 5, "hila"))
    div = model.labels.label_divisor
    ids = [set(np.unique(f[np.isin(f // div, model.labels.thing_ids)]).tolist()) for f in frames]
    assert ids[0] and all(i == ids[0] for i in ids)  # the same things, the same ids
    assert all(np.array_equal(f, frames[0]) for f in frames)


class _Square(torch.nn.Module):
    """Stands in for a network: query 0 (person) masks the bright pixels, query 1 (road) the
    rest, query 2 is "no object"; features are fixed per query."""

    def __init__(self) -> None:
        super().__init__()
        self.feats = torch.nn.Parameter(torch.eye(3, 8))

    def forward(self, pixel_values):
        bright = pixel_values.mean(1) > 0.5  # (B, H, W)
        masks = torch.stack([bright, ~bright, bright], 1).float() * 20 - 10
        logits = torch.tensor([[10.0, -10, -10, -10, -10], [-10, -10, 10, -10, -10],
                               [-10, -10, -10, -10, 10]]).expand(len(pixel_values), 3, 5)
        return SimpleNamespace(class_queries_logits=logits, masks_queries_logits=masks,
                               transformer_decoder_last_hidden_state=self.feats.expand(
                                   len(pixel_values), 3, 8))


def _square_processor(images, return_tensors):
    return {"pixel_values": torch.stack([torch.from_numpy(i).permute(2, 0, 1).float() / 255
                                         for i in images])}


@pytest.mark.parametrize("tracker", ["hila", "memory", "iou"])
def test_one_track_follows_a_moving_square(tracker):
    labels = hf_label_space(ID2LABEL, num_queries=3)
    model = HFPanopticModel(_Square(), _square_processor, "Mask2FormerForUniversalSegmentation",
                            labels, batch_size=3)
    model.arch = Architecture(*astuple(model.arch)[:3])  # masks at the frame's size already
    frames = []
    for t in range(7):
        rgb = np.zeros((48, 64, 3), dtype=np.uint8)
        rgb[10:26, 4 + 5 * t : 20 + 5 * t] = 255
        frames.append(rgb)
    out = list(model.segment(frames, tracker))
    ids = set()
    for t, pan in enumerate(out):
        person = pan // labels.label_divisor == 0
        assert person.sum() == 16 * 16 and person[10:26, 4 + 5 * t : 20 + 5 * t].all()
        ids |= set(np.unique(pan[person] % labels.label_divisor).tolist())
        assert (pan[~person] == 2 * labels.label_divisor).all()  # road, stuff
    assert len(ids) == 1 and 0 not in ids


# ---------------------------------------------------------------------------------------------
# the command line


@pytest.fixture(scope="module")
def kitti_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "kitti"
    assert main(["synth", str(root), "--format", "kitti-step", "--videos", "1", "--frames", "4",
                 "--height", "64", "--width", "128", "--seed", "5"]) == 0
    return root


@pytest.fixture(scope="module")
def model_world(tmp_path_factory):
    """A synthetic data set in the tiny models' own classes (person, car, road, sky), so that
    their predictions and the ground truth share class ids."""
    folder = tmp_path_factory.mktemp("model-world")
    spec = folder / "labels.json"
    spec.write_text(json.dumps(hf_label_space(ID2LABEL, num_queries=8).to_json()))
    root = folder / "data"
    assert main(["synth", str(root), "--format", "kitti-step", "--label-space", str(spec),
                 "--videos", "1", "--frames", "4", "--height", "64", "--width", "128",
                 "--seed", "5", "--split", "val"]) == 0
    return root


@pytest.mark.parametrize("arch", ARCHS)
def test_cli_segment_with_an_hf_model_then_eval(tiny, model_world, tmp_path, arch):
    out = tmp_path / "pred"
    assert main(["segment", str(model_world), "--input-format", "kitti-step", "--split", "val",
                 "--hf-model", str(tiny[arch]), "--batch-size", "3", "--out", str(out),
                 "--format", "kitti-step"]) == 0
    fmt = get_format("kitti-step")
    (name,) = fmt.list_videos(out, split="val")
    assert len(fmt.read_video(out, name, split="val")) == 4
    assert (out / "overlay" / f"{name}.mp4").is_file()
    assert main(["eval", str(model_world), str(out), "--format", "kitti-step", "--split", "val",
                 "--json", str(tmp_path / "m.json")]) == 0
    result = json.loads((tmp_path / "m.json").read_text())
    assert result["config"]["label_space"] == "hf-4"
    values = [result["stq"]["STQ"], result["stq"]["AQ"], result["semantic"]["mIoU"],
              result["vpq"]["per_k"]["1"]["VPQ"]]  # (k = 6 has no window in 4 frames)
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in values)


def test_eval_refuses_predictions_in_other_classes_than_the_ground_truth(tiny, kitti_root,
                                                                         tmp_path, capsys):
    """COCO-style classes 0..3 (person, car, road, sky) are not KITTI-STEP's 0..3 (road,
    sidewalk, building, wall): scoring them against each other would be silently wrong."""
    out = tmp_path / "pred"
    assert main(["segment", str(kitti_root), "--input-format", "kitti-step", "--hf-model",
                 str(tiny["detr"]), "--no-overlay", "--out", str(out),
                 "--format", "kitti-step"]) == 0
    capsys.readouterr()
    assert main(["eval", str(kitti_root), str(out), "--format", "kitti-step"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "label space 'hf-4'" in err[0] and "'kitti-step'" in err[0]
    assert str(out) in err[0]


def _copy(src, dst, drop=(), id2label=None):
    shutil.copytree(src, dst)
    for name in drop:
        (dst / name).unlink()
    if id2label is not None:
        config = json.loads((dst / "config.json").read_text())
        config["id2label"] = {str(k): v for k, v in id2label.items()}
        config["label2id"] = {v: k for k, v in id2label.items()}
        (dst / "config.json").write_text(json.dumps(config))
    return dst


@pytest.mark.parametrize(("case", "message"), [
    ("missing", "no such folder"),
    ("no-config", "no config.json"),
    ("unsupported", "not a supported panoptic architecture; supported: Mask2Former"),
    ("no-processor", "no preprocessor_config.json"),
    ("unknown-classes", "give --label-space"),
])
def test_cli_mistakes_exit_2_with_one_line_naming_the_path(tiny, kitti_root, tmp_path, capsys,
                                                           case, message):
    model = tmp_path / case
    if case == "no-config":
        model.mkdir()
    elif case == "unsupported":
        tf.BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                      intermediate_size=8, architectures=["BertModel"]).save_pretrained(model)
    elif case == "no-processor":
        _copy(tiny["detr"], model, drop=["preprocessor_config.json"])
    elif case == "unknown-classes":
        _copy(tiny["mask2former"], model, id2label={0: "person", 1: "gizmo", 2: "road", 3: "sky"})
    capsys.readouterr()
    assert main(["segment", str(kitti_root), "--input-format", "kitti-step", "--hf-model",
                 str(model), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and str(model) in err[0]


def test_a_label_space_json_names_unknown_classes(tiny, tmp_path):
    model = _copy(tiny["mask2former"], tmp_path / "m",
                  id2label={0: "person", 1: "gizmo", 2: "road", 3: "sky"})
    spec = tmp_path / "labels.json"
    spec.write_text(json.dumps({"categories": [
        {"id": 0, "name": "person", "isthing": 1}, {"id": 1, "name": "gizmo", "isthing": 1},
        {"id": 2, "name": "road", "isthing": 0}, {"id": 3, "name": "sky", "isthing": 0}]}))
    out = tmp_path / "pred"
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        Image.fromarray(np.full((64, 96, 3), 60 * i, np.uint8)).save(frames / f"{i:06d}.png")
    assert main(["segment", str(frames), "--hf-model", str(model), "--label-space", str(spec),
                 "--out", str(out), "--format", "vipseg", "--tracker", "memory"]) == 0
    labels = load_hf_model(str(model), label_space=load_label_space(spec)).labels
    assert labels.thing_ids == (0, 1)


def test_without_transformers_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import fails as if not installed
    with pytest.raises(InputError, match=r"pip install 'vpseg\[hf\]'"):
        load_hf_model("org/model")


def test_a_hub_id_goes_to_transformers_and_its_failure_names_the_id(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(InputError, match="cannot load the model's config") as info:
        load_hf_model("acme/no-such-model")
    assert str(info.value).startswith("acme/no-such-model: ")
    assert len(str(info.value).splitlines()) == 1


def test_oneformer_reads_its_class_info_from_the_model_folder(tiny, tmp_path):
    """A saved OneFormer names a hub repo_path for its class_info_file; with the file in the
    model folder it loads offline."""
    model = _copy(tiny["oneformer"], tmp_path / "one")
    config = json.loads((model / "processor_config.json").read_text())
    config["image_processor"]["repo_path"] = "shi-labs/oneformer_demo"
    (model / "processor_config.json").write_text(json.dumps(config))
    loaded = load_hf_model(str(model))
    assert loaded.processor.image_processor.metadata["class_names"][0] == "person"
    (model / "class_info.json").unlink()
    with pytest.raises(InputError, match="class_info_file") as info:
        load_hf_model(str(model))
    assert str(model) in str(info.value)


def test_a_misspelt_tracker_is_refused_before_the_model_loads(tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(frames / "000000.png")
    assert main(["segment", str(frames), "--hf-model", str(tmp_path / "not-loaded"),
                 "--tracker", "hilla", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown tracker 'hilla'" in err[0]
    assert not (tmp_path / "out").exists()


def test_checkpoint_only_flags_are_refused_with_an_hf_model(tmp_path, capsys):
    assert main(["segment", str(tmp_path), "--hf-model", "acme/model", "--clip", "2",
                 "--out", str(tmp_path / "out")]) == 2
    assert "--clip: for --checkpoint models only" in capsys.readouterr().err
    ckpt = tmp_path / "ckpt.pt"
    ckpt.write_bytes(b"")
    assert main(["segment", str(tmp_path), "--checkpoint", str(ckpt), "--batch-size", "8",
                 "--map-to", "kitti-step", "--out", str(tmp_path / "out")]) == 2
    assert "--map-to, --batch-size: for --hf-model only" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# a data set's classes instead of the model's (--map-to)


def test_class_mapping_by_name_with_overrides():
    own = hf_label_space(ID2LABEL, num_queries=8)  # person, car, road, sky-other-merged
    kitti = get_label_space("kitti-step")
    lut, unmapped = class_mapping(own, kitti)
    names = [kitti[int(c)].name for c in lut]
    assert names == ["person", "car", "road", "sky"] and unmapped == []
    lut, unmapped = class_mapping(own, kitti, {"Road": "sidewalk", "car": None})
    assert kitti[int(lut[2])].name == "sidewalk" and lut[1] == kitti.ignore_label
    coco_only = hf_label_space({0: "person", 1: "frisbee", 2: "road"}, num_queries=8)
    lut, unmapped = class_mapping(coco_only, kitti)
    assert unmapped == ["frisbee"] and lut[1] == kitti.ignore_label
    with pytest.raises(InputError, match="'gizmo' is not a class of the model"):
        class_mapping(own, kitti, {"gizmo": "car"})
    with pytest.raises(InputError, match="'lorry' .* is not a class of label space 'kitti-step'"):
        class_mapping(own, kitti, {"car": "lorry"})


@pytest.mark.parametrize("tracker", ["hila", "iou"])
def test_a_mapped_model_writes_the_data_sets_classes(tracker):
    own = hf_label_space(ID2LABEL, num_queries=3)
    kitti = get_label_space("kitti-step")
    model = HFPanopticModel(_Square(), _square_processor, "Mask2FormerForUniversalSegmentation",
                            own, batch_size=2, mapped=(kitti, class_mapping(own, kitti)[0]))
    model.arch = Architecture(*astuple(model.arch)[:3])
    assert model.labels is kitti and model.model_labels is own
    frames = []
    for t in range(5):
        rgb = np.zeros((48, 64, 3), dtype=np.uint8)
        rgb[10:26, 4 + 5 * t : 20 + 5 * t] = 255
        frames.append(rgb)
    ids = set()
    for t, pan in enumerate(model.segment(frames, tracker)):
        person = pan // kitti.label_divisor == kitti.by_name("person").id
        assert person[10:26, 4 + 5 * t : 20 + 5 * t].all() and person.sum() == 16 * 16
        assert (pan[~person] == kitti.by_name("road").id * kitti.label_divisor).all()
        ids |= set(np.unique(pan[person] % kitti.label_divisor).tolist())
    assert len(ids) == 1 and 0 not in ids


def test_cli_map_to_the_ground_truths_classes_then_eval(tiny, kitti_root, tmp_path, capsys):
    out = tmp_path / "pred"
    assert main(["segment", str(kitti_root), "--input-format", "kitti-step", "--hf-model",
                 str(tiny["mask2former"]), "--map-to", "kitti-step", "--no-overlay",
                 "--out", str(out), "--format", "kitti-step"]) == 0
    assert "--map-to kitti-step: 4 of the model's 4 classes" in capsys.readouterr().err
    assert not (out / "vpseg_label_space.json").exists()  # KITTI-STEP's own classes
    assert main(["eval", str(kitti_root), str(out), "--format", "kitti-step",
                 "--json", str(tmp_path / "m.json")]) == 0
    result = json.loads((tmp_path / "m.json").read_text())
    assert result["config"]["label_space"] == "kitti-step"
    assert 0.0 <= result["stq"]["STQ"] <= 1.0 and 0.0 <= result["semantic"]["mIoU"] <= 1.0


@pytest.mark.parametrize(("extra", "message"), [
    (["--class-map", "map.json"], "--class-map needs --map-to"),
    (["--map-to", "no-such-labels"], "--map-to takes a built-in label space"),
    (["--map-to", "kitti-step", "--class-map", "map.json"], "'lorry' (for 'car') is not a class"),
    (["--map-to", "kitti-step", "--class-map", "bad.json"], "cannot read the class map JSON"),
])
def test_cli_map_to_mistakes(tiny, kitti_root, tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "map.json").write_text(json.dumps({"car": "lorry"}))
    (tmp_path / "bad.json").write_text("{car: lorry")
    assert main(["segment", str(kitti_root), "--input-format", "kitti-step", "--hf-model",
                 str(tiny["detr"]), *extra, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "out").exists()
