"""vpseg report: the eval's per-video instance counts, the page's sections, its errors, and the
page in a real headless Chromium (plots drawn, clip plays, screenshot kept as an artefact)."""

import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest

from vpseg.cli.main import main
from vpseg.core.labels import get_label_space
from vpseg.core.video import Video
from vpseg.errors import InputError
from vpseg.evaluation import EvalConfig, evaluate_video
from vpseg.formats import get_format
from vpseg.report import build_report, write_report

SECTIONS = ("evaluated", "metrics", "per-video", "vpq-k", "instances", "per-class", "clips")
CHROMIUM = Path(os.environ.get("VPSEG_CHROMIUM", "/usr/bin/chromium"))
ARTEFACTS = Path(os.environ.get("VPSEG_TEST_ARTEFACTS",
                                Path(__file__).resolve().parents[1] / "test-artefacts"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """GT (2 videos x 8 frames, 64x128 KITTI-STEP), a prediction that differs from it (the same
    seed in a harder world: other shapes and tracks), their eval JSON and the report."""
    root = tmp_path_factory.mktemp("report")
    common = ["--format", "kitti-step", "--videos", "2", "--frames", "8", "--height", "64",
              "--width", "128", "--seed", "3"]
    assert main(["synth", str(root / "gt"), *common]) == 0
    assert main(["synth", str(root / "pred"), *common, "--difficulty", "0.9"]) == 0
    assert main(["eval", str(root / "gt"), str(root / "pred"), "--format", "kitti-step",
                 "--metrics", "stq,vpq,pq,semantic,tracking", "--json", str(root / "r.json")]) == 0
    assert main(["report", str(root / "r.json"), "--gt", str(root / "gt"), "--pred",
                 str(root / "pred"), "--out", str(root / "report.html")]) == 0
    return root


def _sections(html: str) -> dict[str, str]:
    """Section id -> its HTML."""
    return dict(re.findall(r'<section id="([\w-]+)".*?>(.*?)</section>', html, flags=re.S))


# --- vpseg eval: per-video instance counts ---------------------------------------------------

def test_eval_counts_distinct_gt_thing_tracks_per_video():
    labels = get_label_space("kitti-step")  # things: person 11, car 13; divisor 1000
    f0 = np.zeros((8, 8), np.int32)  # road
    f0[:2, :2] = 11001  # person track 1
    f0[:2, 4:6] = 13002  # car track 2
    f0[6:, :] = 13000  # car crowd: no track
    f0[4, 4] = 255000  # void
    f1 = f0.copy()
    f1[:2, 4:6] = 13003  # car track 3 appears, track 2 leaves
    f1[3, :] = 5  # road with an instance id: stuff, not a track
    gt = Video("v", [f0, f1], labels)
    acc = evaluate_video(gt, gt, labels, EvalConfig(metrics=("semantic",)))
    assert acc.per_video["v"]["instances"] == 3  # 11001, 13002, 13003
    acc = evaluate_video(gt, gt, labels, EvalConfig(metrics=("stq",)))
    assert acc.per_video["v"]["instances"] == 3
    assert acc.stq is not None and acc.stq.result()["per_sequence"]["v"]["tubes"] == 3


def test_eval_json_instances_match_the_ground_truth(run):
    results = json.loads((run / "r.json").read_text())
    fmt = get_format("kitti-step")
    for name, row in results["per_video"].items():
        ids = np.unique(np.concatenate([np.unique(f) for f in fmt.read_video(run / "gt", name).panoptic]))
        sem, inst = np.divmod(ids, 1000)
        assert row["instances"] == int(np.sum(np.isin(sem, [11, 13]) & (inst > 0))) > 0


# --- the page ----------------------------------------------------------------------------------

def test_report_holds_every_section_and_nothing_external(run):
    html = (run / "report.html").read_text()
    sections = _sections(html)
    assert tuple(sections) == SECTIONS
    results = json.loads((run / "r.json").read_text())
    assert "STQ 38" in sections["metrics"] or "STQ " in sections["metrics"]
    assert f'{100 * results["stq"]["STQ"]:.2f}' in sections["metrics"]
    assert f'{100 * results["vpq"]["VPQ"]:.2f}' in sections["metrics"]
    for name, row in results["per_video"].items():
        assert f'<th scope="row">{name}</th>' in sections["per-video"]
        assert f'{100 * row["STQ"]:.2f}' in sections["per-video"]
    for k in results["vpq"]["per_k"]:
        assert f'<th scope="row">{k}</th>' in sections["vpq-k"]
    assert sections["vpq-k"].count("<svg") == 1 and sections["instances"].count("<svg") == 1
    for name, scores in results["per_class"].items():
        assert f"{name}: {100 * scores['IoU']:.2f}" in sections["per-class"]
    assert sections["clips"].count('src="data:video/webm;base64,') == 2
    assert "kitti-step" in sections["evaluated"] and "vpseg version" in sections["evaluated"]
    # self-contained: no script, no linked file, no URL but the SVG namespace
    assert "<script" not in html and "<link" not in html and "<img" not in html
    assert re.findall(r'(?:src|href)="(?!data:|#)[^"]*"', html) == [] and "url(" not in html
    plain = re.sub(r'"data:[^"]*"', '""', html)
    assert set(re.findall(r"(?:https?:)?//[\w./-]+", plain)) == {"http://www.w3.org/2000/svg"}


def test_report_without_ground_truth_uses_the_json_counts(run, tmp_path):
    results = json.loads((run / "r.json").read_text())
    sections = _sections(build_report(results))
    assert "<svg" in sections["instances"] and "as vpseg eval recorded them" in sections["instances"]
    assert "<video" not in sections["clips"] and "--gt and --pred" in sections["clips"]


def test_older_results_get_instance_counts_from_the_ground_truth(run, tmp_path):
    results = json.loads((run / "r.json").read_text())
    counts = {n: r.pop("instances") for n, r in results["per_video"].items()}
    assert "older vpseg" in _sections(build_report(results))["instances"]
    write_report(results, tmp_path / "r.html", gt=run / "gt", clips=0)
    sections = _sections((tmp_path / "r.html").read_text())
    assert "counted from the ground truth" in sections["instances"]
    for name, count in counts.items():
        row = re.search(rf'<th scope="row">{name}</th>(.*?)</tr>', sections["per-video"]).group(1)
        assert re.findall(r'<td class="num">([^<]*)</td>', row)[:2] == ["8", str(count)]
    assert "instances" not in next(iter(results["per_video"].values()))  # input left alone


def test_semantic_only_results_and_odd_values_say_what_is_missing():
    results = {"semantic": {"mIoU": 0.5, "fwIoU": None, "pixel_acc": float("nan"), "mean_acc": "x"},
               "vc": {"8": None}, "tc": None,
               "per_video": {"<b>v</b>": {"frames": 3, "mIoU": 0.5}},
               "per_class": {"a&b": {"IoU": 0.25}, "void": {"PQ": 0.1}}}
    sections = _sections(build_report(results))
    assert tuple(sections) == SECTIONS
    assert "no VPQ" in sections["vpq-k"] and "no STQ" in sections["instances"]
    assert "mIoU 50.00" in sections["metrics"] and sections["metrics"].count("n/a</") == 5
    assert "&lt;b&gt;v&lt;/b&gt;" in sections["per-video"] and "<b>v" not in sections["per-video"]
    assert "a&amp;b: 25.00" in sections["per-class"] and "void" not in sections["per-class"]
    assert "record no configuration" in sections["evaluated"]


# --- errors: one line naming the file, exit code 2 ---------------------------------------------

def _fails(argv, capsys, *needles):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert str(needle) in err, err
    return err


def test_bad_results_files(tmp_path, capsys):
    out = str(tmp_path / "o.html")
    bad = tmp_path / "bad.json"
    _fails(["report", str(tmp_path / "none.json"), "--out", out], capsys, "none.json", "no such file")
    bad.write_text("{not json")
    _fails(["report", str(bad), "--out", out], capsys, "bad.json", "not JSON")
    bad.write_text("[1, 2]")
    _fails(["report", str(bad), "--out", out], capsys, "bad.json", "JSON object")
    bad.write_text('{"videos": 3}')
    _fails(["report", str(bad), "--out", out], capsys, "bad.json", "not a vpseg results file")
    bad.write_text('{"stq": {"STQ": 0.5}, "per_video": [1]}')
    _fails(["report", str(bad), "--out", out], capsys, "bad.json", "per_video")
    _fails(["report", str(tmp_path), "--out", out], capsys, str(tmp_path), "folder")
    assert not (tmp_path / "o.html").exists()


def test_bad_arguments(run, tmp_path, capsys):
    results, out = str(run / "r.json"), str(tmp_path / "o.html")
    _fails(["report", results, "--pred", str(run / "pred"), "--out", out], capsys, "--pred needs --gt")
    _fails(["report", results, "--gt", str(run / "gt"), "--format", "nope", "--out", out], capsys,
           "unknown format 'nope'")
    _fails(["report", results, "--out", results], capsys, "--out", "r.json")
    _fails(["report", results, "--out", str(tmp_path)], capsys, "--out must name a file")
    _fails(["report", results, "--clips", "-1", "--out", out], capsys, "--clips")
    _fails(["report", results, "--gt", str(tmp_path / "nowhere"), "--out", out], capsys, "nowhere")
    assert not (tmp_path / "o.html").exists()


def test_missing_videos(run, tmp_path, capsys):
    out = str(tmp_path / "o.html")
    pred = tmp_path / "pred"  # a prediction root with only one of the two videos
    assert main(["synth", str(pred), "--format", "kitti-step", "--videos", "1", "--frames", "8",
                 "--height", "64", "--width", "128"]) == 0
    _fails(["report", str(run / "r.json"), "--gt", str(run / "gt"), "--pred", str(pred),
            "--out", out], capsys, "missing video '0001'", pred)
    results = json.loads((run / "r.json").read_text())
    results["per_video"]["0007"] = {"frames": 8, "STQ": 0.5}
    (tmp_path / "r.json").write_text(json.dumps(results))
    _fails(["report", str(tmp_path / "r.json"), "--gt", str(run / "gt"), "--out", out], capsys,
           "no video '0007'", run / "gt")
    with pytest.raises(InputError, match="format"):  # the results name none, none is given
        build_report({"stq": {"STQ": 0.5}}, gt=run / "gt")


# --- in a real browser -------------------------------------------------------------------------

@pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"no Chromium at {CHROMIUM} (set VPSEG_CHROMIUM; "
                    ".ci/run installs Debian's chromium)")
def test_report_in_headless_chromium(run):
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTEFACTS / "report.png"
    shot.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, viewport={"width": 1100, "height": 900},
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
            page.goto((run / "report.html").resolve().as_uri(), wait_until="load")

            svgs = page.locator("svg.chart")
            assert svgs.count() == 3  # VPQ vs k, STQ/AQ vs instances, per-class IoU
            for i in range(svgs.count()):
                svg = svgs.nth(i)
                box = svg.bounding_box()
                assert box is not None and box["width"] > 100 and box["height"] > 100
                assert svg.get_attribute("aria-labelledby") and svg.locator("title").count() > 0
                marks = svg.evaluate("""s => [...s.querySelectorAll('rect, circle, path')]
                    .map(e => e.getBBox()).map(b => [b.width, b.height])""")
                assert marks and all(w > 0 and h > 0 for w, h in marks), marks

            videos = page.locator("video")
            assert videos.count() == 2
            for i in range(videos.count()):
                video = videos.nth(i)
                video.evaluate("v => v.play()")
                video.element_handle().wait_for_element_state("visible")
                page.wait_for_function("v => v.currentTime > 0", arg=video.element_handle(),
                                       timeout=10_000)
                state = video.evaluate("""v => ({t: v.currentTime, ready: v.readyState,
                    w: v.videoWidth, h: v.videoHeight, error: v.error && v.error.code})""")
                assert state["error"] is None and state["ready"] >= 2 and state["t"] > 0
                assert (state["w"], state["h"]) == (520, 128)  # 128 + 4 + 128 px, enlarged x2
                video.evaluate("v => v.pause()")
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert shot.stat().st_size > 50_000
    from PIL import Image

    with Image.open(shot) as image:
        assert image.width >= 1000 and image.height > 2000
        pixels = np.asarray(image.convert("RGB").resize((64, 64))).reshape(-1, 3)
        assert len(np.unique(pixels, axis=0)) > 50  # not a blank page
