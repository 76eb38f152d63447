"""Training: recipes (data), the loop, atomic resumable checkpoints, torchrun scale-out, logging."""

from .recipe import Recipe, load_recipe, recipe_names
from .trainer import TrainingError, evaluate_run, train

__all__ = ["Recipe", "TrainingError", "evaluate_run", "load_recipe", "recipe_names", "train"]
