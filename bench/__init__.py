"""Benchmarks: Hearth against the engines alone and the servers people run today, side by side."""
