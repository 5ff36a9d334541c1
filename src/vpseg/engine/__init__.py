"""Training and inference engine (PyTorch; ``pip install 'vpseg[torch]'``).

* ``trainer``: a plain training loop (``Trainer``): AdamW, poly learning rate with warmup, gradient
  clipping, optional AMP, atomic resumable checkpoints, a deterministic mode, time-budgeted runs;
* ``data``: clips of T frames from any ``vpseg.formats`` data set or generated on the fly from the
  synthetic world, augmented identically across the clip;
* ``train``: any registered model (``vpseg.models.registry``) on those clips with its own
  criterion; DDP under ``torchrun``;
* ``inference``: any model from its checkpoint alone (``load_model``), frames brought to the
  scale it was trained at and streamed through its segmenter and association.
"""
