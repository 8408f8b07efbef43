"""d2ljax: D2LNet (Dual-Domain Learning for JPEG Artifacts Removal) in JAX/Flax."""
