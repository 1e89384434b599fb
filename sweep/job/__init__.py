"""The job layer: keys and plans, the stages of one job, its record, outcomes and tracking."""
