"""Training: one loop (loop.py) calling one module per model family (gan.py,
diffusion.py, contrastive.py, ebm.py) through the :class:`~losslab.train.loop.Family`
protocol; each family's step is written once over a member axis (members.py),
batched.py trains the seeds of one loss as members; common.py holds what the
families share."""

from losslab.train.loop import FAMILIES, LOOP_KEYS, Family, check_overrides, get_family, train_run

__all__ = ["FAMILIES", "LOOP_KEYS", "Family", "check_overrides", "get_family", "train_run"]
