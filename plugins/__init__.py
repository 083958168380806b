"""Built-in plugins. Installed as `workbench_plugins`; each module registers through the public hooks."""
