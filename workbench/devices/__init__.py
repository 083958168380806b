"""Where work runs: device choice and autocast, torchrun process groups, inputs spread across ranks, progress bars."""
