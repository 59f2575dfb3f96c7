"""Model cards for trained SVU repos: YAML metadata + model-index from the run's metrics, and a layer-weight plot."""

from .card import model_card, write_model_card
from .paper_results import PAPER_RESULTS
from .plot import plot_layer_weights

__all__ = ["PAPER_RESULTS", "model_card", "plot_layer_weights", "write_model_card"]
