"""features.parquet's columns (name -> dtype and meaning) and the survival classes."""

# Survival classes, in order of decreasing health.
SURVIVED, BLURRED, DESTROYED, INACTIVE = "survived", "blurred", "destroyed", "inactive"
CLASSES = (SURVIVED, BLURRED, DESTROYED)

# features.parquet columns: name -> (dtype, meaning). Units: activations are SAE code units.
# fp_* and the SAE weight statistics are full-precision only (the survival predictors);
# q_*, firing_jaccard, rel_amplitude_error, r, silenced, class and damage need the compressed run.
FEATURE_COLUMNS: dict[str, tuple[str, str]] = {
    "sae": ("string", "SAE identifier (hook name) the feature belongs to"),
    "feature": ("int64", "feature index within its SAE"),
    "n_tokens": ("int64", "measured token positions (first position excluded by default)"),
    "fp_active_count": ("int64", "tokens where the FP activation > 0"),
    "fp_frequency": ("float64", "fp_active_count / n_tokens"),
    "fp_mean": ("float64", "mean FP activation over all measured tokens"),
    "fp_mean_active": ("float64", "mean FP activation over tokens where it fires (NaN if never)"),
    "fp_std": ("float64", "population std of the FP activation"),
    "fp_max": ("float64", "peak FP activation"),
    "enc_norm": ("float64", "L2 norm of the feature's encoder column W_enc[:, j]"),
    "dec_norm": ("float64", "L2 norm of the feature's decoder row W_dec[j]"),
    "enc_bias": ("float64", "encoder bias b_enc[j]"),
    "threshold": ("float64", "JumpReLU threshold (NaN for SAEs without one)"),
    "q_active_count": ("int64", "tokens where the compressed activation > 0"),
    "q_mean": ("float64", "mean compressed activation"),
    "q_std": ("float64", "population std of the compressed activation"),
    "firing_jaccard": ("float64", "|FP-active ∩ compressed-active| / |union| over tokens"),
    "rel_amplitude_error": ("float64", "||q − fp||₂ / ||fp||₂ over tokens (NaN if fp ≡ 0)"),
    "r": ("float64", "Pearson(FP, compressed) over tokens; 0 if silenced; NaN if FP constant"),
    "active": ("bool", "fp_active_count ≥ survival.min_active_tokens"),
    "silenced": ("bool", "compressed activation constant over all tokens"),
    "class": ("string", "survived / blurred / destroyed for active features, else inactive"),
    "damage": ("float64", "1 − r (NaN for inactive features)"),
    # The token bootstrap (sweep/derive/uncertainty.py): blocks of whole sequences resampled.
    "r_lo": ("float64", "lower end of r's token-bootstrap interval (NaN: r undefined, or off)"),
    "r_hi": ("float64", "upper end of r's token-bootstrap interval"),
    "r_defined": ("float64", "fraction of resamples where the FP code varies (the interval's)"),
    "uncertain": ("bool", "active, and [min(r_lo, r), max(r_hi, r)] straddles a class threshold"),
    # Steering and ablation fidelity (sweep/steering.py), NaN unless the feature was sampled:
    # r of the FP vs compressed mean change of next-token log-probs, and each side's mean KL.
    "steer_r": ("float64", "Pearson r of FP vs compressed steering effects (1: same effect)"),
    "steer_kl_fp": ("float64", "mean per-token KL of steering the FP model (nats)"),
    "steer_kl_q": ("float64", "mean per-token KL of steering the compressed model (nats)"),
    "steer_kl_ratio": ("float64", "steer_kl_q / steer_kl_fp"),
    "ablate_r": ("float64", "Pearson r of FP vs compressed ablation effects"),
    "ablate_kl_fp": ("float64", "mean per-token KL of ablating the feature in the FP model"),
    "ablate_kl_q": ("float64", "mean per-token KL of ablating it in the compressed model"),
    "ablate_kl_ratio": ("float64", "ablate_kl_q / ablate_kl_fp"),
}
FIDELITY_COLUMNS = tuple(c for c in FEATURE_COLUMNS if c.startswith(("steer_", "ablate_")))
UNCERTAINTY_COLUMNS = ("r_lo", "r_hi", "r_defined", "uncertain")
# Columns that jobs written before them lack: readers fill them in (NaN, or False).
OPTIONAL_COLUMNS = (*UNCERTAINTY_COLUMNS, *FIDELITY_COLUMNS)
