"""Training and inference engine (PyTorch; ``pip install 'vpseg[torch]'``).

So far: a plain training loop (``Trainer``) with AdamW, poly learning rate with warmup, gradient
clipping, optional AMP, atomic resumable checkpoints and a deterministic mode. Data loading over
formats and the synthetic world, video inference and the models come with the models issue.
"""
