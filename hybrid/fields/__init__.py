"""Smoke, fire and liquid: Taichi solvers stepped in lockstep with the rigid bodies.

Importing this package does not start Taichi: ``backend.ensure`` does, when a World
with a ``fields:`` section (or a renderer of one) needs it. ``frames`` and
``seeding`` are NumPy only.
"""
