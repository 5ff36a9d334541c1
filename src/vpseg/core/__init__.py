"""Label spaces, panoptic frames, video containers and the synthetic world (numpy only)."""

from vpseg.core.labels import (
    BUILTIN_LABEL_SPACES,
    Category,
    LabelSpace,
    get_label_space,
    load_label_space,
)
from vpseg.core.panoptic import (
    PANOPTIC_DTYPE,
    merge,
    relabel,
    segment_areas,
    segment_boxes,
    split,
    validate_panoptic,
)
from vpseg.core.video import LazyFrames, Video

__all__ = [
    "BUILTIN_LABEL_SPACES",
    "Category",
    "LabelSpace",
    "LazyFrames",
    "PANOPTIC_DTYPE",
    "Video",
    "get_label_space",
    "load_label_space",
    "merge",
    "relabel",
    "segment_areas",
    "segment_boxes",
    "split",
    "validate_panoptic",
]
