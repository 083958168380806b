"""The training objective: a recipe's [[losses]] summed with their weights, each term logged."""
import torch
from torch import nn

from workbench.api.contracts import capability
from workbench.api.registry import build
from workbench.errors import WorkbenchError


class Objective(nn.Module):
    """Weighted sum of loss modules; forward returns (total, {term: float}) for logging."""

    def __init__(self, terms, plugins=None):
        super().__init__()
        self.names = [name for name, _, _ in terms]
        self.weights = [weight for _, weight, _ in terms]
        self.losses = nn.ModuleList([loss for _, _, loss in terms])
        self.plugins = plugins or [None] * len(terms)   # who registered each loss, named when one breaks the contract

    def forward(self, output, target, model=None, mask=None):
        """`model` and the batch's `mask`: a model that learns where the damage is adds its
        mask_loss as the term `mask` (workbench.api.contracts); other models never see the mask."""
        total, logged = 0.0, {}
        for name, weight, loss, plugin in zip(self.names, self.weights, self.losses, self.plugins):
            value = _checked(loss(output, target), name, plugin)
            total = total + weight * value
            logged[f"loss/{name}"] = value.detach()
            logged.update({f"loss/{k}": v for k, v in capability(loss, "terms").items()})
        if mask is not None and capability(model, "learns_mask"):
            value = capability(model, "mask_loss")(mask.to(output.device, non_blocking=True))
            total = total + value
            logged["loss/mask"] = value.detach()
        return total, logged


def _checked(value, name, plugin):
    """A loss returns a scalar tensor (a batch of values or a float would train wrongly, or not at all)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.is_floating_point():
        return value.reshape(())
    who = f"loss '{name}'" + (f" (plugin '{plugin}')" if plugin else "")
    got = f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}" if isinstance(value, torch.Tensor) else type(value).__name__
    raise WorkbenchError(f"{who} returned {got}; a loss returns a scalar float tensor (reduce it with .mean()).")


def build_objective(recipe, plugins, default="l1"):
    """One Objective from the recipe's [[losses]] (a plain `default` loss when it names none).

    `weight` is read here, not passed to the loss: a loss class may set `default_weight`.
    """
    specs = recipe["losses"] or [{"type": default}]
    terms, seen, owners = [], {}, []
    for i, spec in enumerate(specs):
        spec = dict(spec)
        factory = plugins.losses.get(spec.get("type", ""))
        weight = spec.pop("weight", capability(factory, "default_weight"))
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight < 0:
            raise WorkbenchError(f"{recipe.source}: [[losses]] #{i + 1}: weight must be a number >= 0, got {weight!r}.")
        name, loss = build(plugins.losses, spec, where=f"{recipe.source}: [[losses]] #{i + 1}")
        seen[name] = seen.get(name, 0) + 1
        terms.append((name if seen[name] == 1 else f"{name}#{seen[name]}", float(weight), loss))
        owners.append(plugins.losses.plugin_of(name))
    return Objective(terms, owners)


def check_mask_source(model, chain):
    """A model that learns where the damage is needs a degradation that says where it put it."""
    if not capability(model, "learns_mask"):
        return
    if not any(capability(deg, "reports_mask") for _, deg in chain):
        names = ", ".join(name for name, _ in chain) or "none"
        raise WorkbenchError(f"the model learns where the damage is from the mask a degradation reports, but none of "
                             f"the recipe's degradations ({names}) reports one: use one that does (watermark, "
                             f"erase) or turn the model's detection off (model.detect = false for the unet).")
