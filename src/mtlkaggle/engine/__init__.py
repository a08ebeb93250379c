"""The training engine, one concern per module.

- ``runtime``: device, AMP, ranks from torchrun's variables, seeding and RNG state.
- ``optim``: parameter groups and the learning-rate schedule (stepped in one place).
- ``checkpoint``: atomic save, checked load, resume payloads, loading a fold's model.
- ``distributed``: DDP wrapping, SyncBatchNorm, agreement and gathering across ranks.
- ``trainer``: :class:`Trainer`, whose ``fit()`` is the epoch loop.
"""
