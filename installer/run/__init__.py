"""Stage run: how an installed model runs here (plans, containers, scripts) and running it."""
