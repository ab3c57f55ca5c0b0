"""Stage check: what a model is and needs, from its files and configs, without its weights."""
