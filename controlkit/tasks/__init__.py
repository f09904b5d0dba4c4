"""Application logic that is neither an environment nor a generic planner (today: tabletop pushing)."""
