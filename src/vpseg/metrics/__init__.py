"""Metrics of video panoptic and video semantic segmentation (numpy only)."""
