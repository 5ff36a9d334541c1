"""Models (PyTorch). So far: the building blocks of (clip-)kMaX-DeepLab that can be checked against
their definitions — k-means cross-attention, clip reshaping, PQ-style Hungarian matching. The
networks, losses and builders come with the models issue."""
