"""vpseg: video panoptic and video semantic segmentation — formats, metrics, tools."""

__version__ = "0.1.0"
__all__ = ["__version__"]
