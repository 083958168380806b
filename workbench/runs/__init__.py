"""Run directories and what they hold: recipe.toml, metrics, checkpoints; the one atomic file writer."""
