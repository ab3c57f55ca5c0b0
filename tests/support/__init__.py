"""Test support: the Hub-compatible test server (hub_server, with its files, repos, HTTP handler
and the huggingface_hub wiring in hub_patch)."""
