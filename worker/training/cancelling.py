"""How a training job stops when it is cancelled: the trainer, or the
validation between images, raises this; the job keeps nothing."""


class TrainingCancelledError(Exception):
    """The job was cancelled; nothing it made is kept."""
