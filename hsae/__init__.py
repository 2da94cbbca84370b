"""hsae: hierarchical (cascaded) sparse autoencoders, as an N-level toolkit."""

__version__ = "0.1.0"
