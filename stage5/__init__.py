"""stage5: a complete, fresh dataset of Seoul's all-you-can-eat restaurants from DiningCode."""

__version__ = "0.1.0"
