"""Reading a sweep: job files checked against the results contract, tidy frames, the configs
that vary across jobs, contexts, and runs read back from wandb."""
