"""The passes layer: the streaming FP and compressed passes over the token set (log-probs, sparse
codes, statistics, contexts, SAE fit, perplexity) and the FP reference cache."""
