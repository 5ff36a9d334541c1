"""Models (PyTorch): Video-kMaX's clip-kMaX (``video_kmax``: backbones, kMaX pixel decoder,
k-means transformer decoder, heads; named configurations ``video-kmax-r50``,
``video-kmax-convnext-l``, ``video-kmax-tiny``), its building blocks (``kmax_ops``, ``layers``) and
the kMaX-DeepLab training losses (``losses``). HiLA-MB lives in ``vpseg.tracking`` (``hila``)."""
