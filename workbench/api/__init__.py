"""The plugin API: hooks, the registry, the contracts plugins keep and the parts they build on."""
