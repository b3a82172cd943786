"""Synthetic datasets: many clips stored as tar shards with a manifest, checked and streamed back.

`shards` (one shard file), `manifest` (the dataset folder and its manifest.json),
`verify` (checking a folder against its manifest), `loader` (a torch IterableDataset).
"""
