"""The pure core: config, env resolution with provenance, interpolation, the dependency
graph, the restart policy, watch routing, log formatting. No I/O beyond reading files."""
