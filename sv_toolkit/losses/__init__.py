"""Classification heads used to train speaker embeddings."""
from sv_toolkit.losses.aam import AAMSoftmax, MarginScheduler

__all__ = ["AAMSoftmax", "MarginScheduler"]
