"""The top layer: command-line entry points (launch, audit, export) and Hydra callbacks."""
