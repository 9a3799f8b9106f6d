"""leed_tf: LEED (Label-Free Expression Editing via Disentanglement, ECCV 2020)
in TensorFlow 2 and Keras 3."""

__version__ = "0.1.0"
