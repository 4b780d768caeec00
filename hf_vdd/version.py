"""The hf_vdd version (recorded in every card, checkpoint and benchmark cell)."""

__version__ = "0.1.0"
