"""The inputs layer: the token set, the HF model, its SAEs, and the hooked forward that reads
the residual stream at TransformerLens hook names."""
