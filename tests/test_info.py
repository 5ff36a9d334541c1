from vpseg.info import summarize


def test_summary_counts_by_hand(tiny_video):
    summary = summarize([tiny_video], tiny_video.label_space).to_json()
    assert summary["videos"] == 1
    assert summary["annotated_frames"] == 3
    assert summary["frames"] == 3
    # tracks: person 7 and car 9 (the crowd region has no id)
    assert summary["thing_instances"] == 2
    assert summary["max_track_length"] == 3 and summary["mean_track_length"] == 3.0
    # masks per frame: road, sky, person 7, car 9, crowd = 5 (void excluded)
    assert summary["masks_per_frame"] == 5
    assert summary["thing_masks_per_frame"] == 2
    assert summary["void_fraction"] == 1 / 24
    assert set(summary["per_class_pixels"]) == {"road", "sky", "person", "car"}


def test_sparse_video_counts_all_frames(tiny_video):
    from dataclasses import replace

    sparse = replace(tiny_video, frame_index=(4, 9, 14))
    summary = summarize([sparse], sparse.label_space).to_json()
    assert summary["frames"] == 11 and summary["annotated_frames"] == 3
