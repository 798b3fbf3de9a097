"""Thin entry points, one per job: each takes a resolved `Config` (and paths) and writes to output_dir."""
