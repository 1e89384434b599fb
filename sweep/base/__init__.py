"""The bottom layer: errors, registries, content digests, atomic files, provenance, paths."""
