"""Colouring panoptic frames and writing PNG sequences and H.264 MP4 videos."""

from vpseg.viz.render import colorize, overlay, render_frames, side_by_side, track_color
from vpseg.viz.writer import write_mp4, write_pngs

__all__ = [
    "colorize",
    "overlay",
    "render_frames",
    "side_by_side",
    "track_color",
    "write_mp4",
    "write_pngs",
]
