"""qfeat's Hydra launchers: submitit's local and SLURM launchers with a live status and outcomes."""
