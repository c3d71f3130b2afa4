"""Theory: pure layer-to-layer recursions of the statistics of a random MLP (never imports sampling)."""
from .infinite import infinite_width

__all__ = ["infinite_width"]
from .first_order import MAX_FULL_SAMPLES, NearlyCollinearWarning, at_width, finite_width

__all__ += ["finite_width", "at_width", "MAX_FULL_SAMPLES", "NearlyCollinearWarning"]
