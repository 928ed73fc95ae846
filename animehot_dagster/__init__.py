"""Anime Hot: how fast anime IP merchandise changes hands on Mercari Japan, on Dagster."""
