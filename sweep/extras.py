"""Result files beside features.parquet: each feature's top contexts and the token set they
point into, so a report can show what a feature fired on without re-running a model."""

import pandas as pd
import torch

from sweep.contexts import Contexts


def token_frame(tokens: torch.Tensor, tokenizer) -> pd.DataFrame:
    """One row per measured token: seq, pos, token_id and that token decoded on its own."""
    n_seq, seq_len = tokens.shape
    ids = tokens.reshape(-1).tolist()
    text = {i: tokenizer.decode([i]) for i in set(ids)}
    return pd.DataFrame(
        {
            "seq": [s for s in range(n_seq) for _ in range(seq_len)],
            "pos": list(range(seq_len)) * n_seq,
            "token_id": ids,
            "text": [text[i] for i in ids],
        }
    ).astype({"seq": "int64", "pos": "int64", "token_id": "int64", "text": "string"})


def contexts_frame(
    contexts: dict[str, Contexts], frame: pd.DataFrame, rows_per_seq: int, first: int
) -> pd.DataFrame:
    """Top contexts of every active feature of every SAE (sweep.contexts.Contexts.frame)."""
    parts = [
        ctx.frame(hook, rows_per_seq, first, features=frame.loc[mask, "feature"].to_numpy())
        for hook, ctx in contexts.items()
        for mask in [(frame["sae"] == hook) & frame["active"]]
    ]
    return pd.concat(parts, ignore_index=True).astype({"sae": "string", "ranked_by": "string"})
