"""Result files beside features.parquet: each feature's top contexts and the token set they
point into, so a report can show what a feature fired on without re-running a model."""

import pandas as pd
import torch

from sweep.inputs.token_bytes import token_bytes
from sweep.passes.contexts import Contexts


def token_frame(tokens: torch.Tensor, tokenizer) -> pd.DataFrame:
    """One row per measured token: seq, pos, token_id and the exact bytes it stands for (a
    context decodes from its tokens' joined bytes: characters split over tokens stay whole)."""
    n_seq, seq_len = tokens.shape
    ids = tokens.reshape(-1).tolist()
    raw = token_bytes(tokenizer, ids)
    return pd.DataFrame(
        {
            "seq": [s for s in range(n_seq) for _ in range(seq_len)],
            "pos": list(range(seq_len)) * n_seq,
            "token_id": ids,
            "bytes": [raw[i] for i in ids],
        }
    ).astype({"seq": "int64", "pos": "int64", "token_id": "int64"})


def contexts_frame(
    contexts: dict[str, Contexts], frame: pd.DataFrame, rows_per_seq: int, first: int
) -> pd.DataFrame:
    """Top contexts of every active feature of every SAE (sweep.passes.contexts.Contexts.frame)."""
    parts = [
        ctx.frame(hook, rows_per_seq, first, features=frame.loc[mask, "feature"].to_numpy())
        for hook, ctx in contexts.items()
        for mask in [(frame["sae"] == hook) & frame["active"]]
    ]
    return pd.concat(parts, ignore_index=True).astype({"sae": "string", "ranked_by": "string"})
