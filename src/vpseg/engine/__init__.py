"""Training and inference engine (PyTorch; ``pip install 'vpseg[torch]'``).

* ``trainer``: a plain training loop (``Trainer``): AdamW, poly learning rate with warmup, gradient
  clipping, optional AMP, atomic resumable checkpoints, a deterministic mode, time-budgeted runs;
* ``data``: clips of T frames from any ``vpseg.formats`` data set or generated on the fly from the
  synthetic world, augmented identically across the clip;
* ``train``: Video-kMaX on those clips with the kMaX losses; DDP under ``torchrun``;
* ``inference``: online (T = 1) and near-online (clips of T overlapping by one) video inference
  feeding a ``vpseg.tracking`` tracker.
"""
