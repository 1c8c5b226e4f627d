"""Steps 5-6 model code: preference pairs, the stacked-MLP ensemble, its training and scoring."""
