"""Built-in recipes (TOML). Installed as `workbench_recipes` so they are found after `pip install .`."""
