"""Tools for plugin authors: `workbench new` scaffolds and the contract checks of `workbench check`.

A plugin's own tests call `assert_degradation_contract`, `assert_model_contract` or
`assert_loss_contract` from here; each raises AssertionError listing every broken property."""
from workbench.author.degradations import assert_degradation_contract
from workbench.author.losses import assert_loss_contract
from workbench.author.models import assert_model_contract

__all__ = ["assert_degradation_contract", "assert_loss_contract", "assert_model_contract"]
