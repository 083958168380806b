"""Tools for plugin authors: `workbench new` scaffolds and the contract checks of `workbench check`."""
