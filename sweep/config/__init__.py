"""The config layer: the typed schema (one node per compression method), composing it, where
inputs live, and the checks every value passes before any heavy import."""
