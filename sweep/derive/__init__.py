"""The derive layer: from measured statistics to survival classes, prediction, overlap and the
steering/ablation fidelity of features."""
