"""jaxseed: many fine-tuning seeds in one compiled JAX program, and the statistics of what the seed changes."""

__version__ = "0.1.0"
