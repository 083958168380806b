"""What the trainer writes to and reads from its checkpoints, and how it reports an interruption.

`last.pt` holds everything a resume needs: weights, optimiser, schedule, scaler, torch RNG, the best
score so far and, when a signal stopped the run in the middle of an epoch, the step reached and the
epoch's running loss sums. `best.pt` holds the weights of the best validation score.
"""
import math
import warnings

import torch
from tqdm import tqdm

from workbench.devices import distributed
from workbench.errors import WorkbenchError
from workbench.runs import checkpoint, files, rundir
from workbench.train.ema import ema_state, load_ema


class CheckpointState:
    """Mixed into the trainer: saving, resuming and the messages that name what was kept."""

    def _state(self, epochs_done, valid):
        return {"format": checkpoint.FORMAT, "model": self.model.state_dict(), "recipe": self.recipe.cfg,
                "versions": checkpoint.versions(), "epoch": epochs_done, "metrics": valid, "task": self.task.kind,
                **(ema_state(self.ema) if self.ema is not None else {})}

    def _save(self, epochs_done, valid):
        state = self._state(epochs_done, valid)
        score = valid.get(self.task.best_key, math.nan)   # NaN never improves
        score = score if getattr(self.task, "higher_is_better", True) else -score   # a loss: lower is better
        improved = score > self.best
        if improved:
            self.best = score
            checkpoint.save(state, self.run.dir / "checkpoints" / "best.pt")
        self._save_last(state)
        self.saved = (epochs_done, 0)

    def _save_last(self, state, step=0, partial=None):
        state.update(optimizer=self.opt.state_dict(), scheduler=self.sched.state_dict(), scaler=self.scaler.state_dict(),
                     rng=rng_state(), best=self.best, step=step, partial=partial or {}, bad=self.bad)
        checkpoint.save(state, self.run.dir / "checkpoints" / "last.pt")

    def _stop_requested(self):
        return distributed.any_rank(self.stop.requested, self.device)   # one process: just the flag

    def _save_mid_epoch(self, epoch, step, totals, n_steps, log=None):
        """last.pt after `step` steps of `epoch`: weights, optimiser, schedule, RNG and the epoch's
        running loss, so the resumed epoch logs the same numbers as an uninterrupted one."""
        self._require_finite(epoch)   # never overwrite a good last.pt with NaN weights
        if self.rank == 0:
            valid = self.run.history[-1].get("valid", {}) if self.run.history else {}
            with self.stop.saving():
                partial = {"totals": dict(totals), "steps": n_steps, **({"log": log} if log else {})}
                self._save_last(self._state(epoch, valid), step, partial)
        distributed.barrier()
        self.saved = (epoch, step)

    def _report_interruption(self, run_dir, saved_now, removed=False):
        if self.rank != 0:
            return
        epochs, step = self.saved
        where = f"after step {step} of epoch {epochs + 1}" if step else f"after epoch {epochs}"
        if saved_now:
            tqdm.write(f"\nInterrupted: saved the state {where} in {run_dir / 'checkpoints' / 'last.pt'}. "
                       f"Continue with: workbench run --resume {run_dir}")
        elif epochs or step:
            tqdm.write(f"\nInterrupted: the checkpoint saved {where} is kept. Continue with: workbench run --resume {run_dir}")
        else:
            gone = f"; {run_dir} was removed" if removed else f" in {run_dir}"
            tqdm.write(f"\nInterrupted during the first epoch: nothing was saved yet{gone}.")

    def _check_steps(self, run_dir, state):
        """The data must give the epochs the checkpoint counted: a folder that gained or lost photos
        would shift every step of the resumed epochs."""
        then = (self.sched.total_steps - 1) // state["recipe"]["train"]["epochs"]
        if then != self.steps:
            raise WorkbenchError(f"{run_dir}: an epoch is now {self.steps} steps but was {then} when the checkpoint was "
                                 f"saved: the training images (data.train = {self.recipe['data']['train']!r}) changed. "
                                 "Put them back to resume, or start a new run.")

    def _stretch_schedule(self, total):
        """The one-cycle schedule of the new length, at the step reached (train.epochs changed on resume)."""
        done = self.sched.last_epoch
        if done >= total - 1:   # fewer epochs than already done: the trainer says it has finished
            return
        sched = torch.optim.lr_scheduler.OneCycleLR(self.opt, max_lr=self.recipe["train"]["lr"], total_steps=total)
        with warnings.catch_warnings():   # "step() before optimizer.step()": the optimiser stepped before the resume
            warnings.simplefilter("ignore")
            sched.last_epoch = done - 1
            sched.step()
        self.sched = sched

    def _require_finite(self, epoch):
        """Stop before NaN/Inf weights are judged, logged or saved over a good checkpoint."""
        if not finite(self.model):
            raise WorkbenchError(self._diverged(f"the weights became NaN or Inf in epoch {epoch + 1}"))

    def _diverged(self, what):
        epochs, step = self.saved
        where = f"after step {step} of epoch {epochs + 1}" if step else f"of epoch {epochs}"
        kept = f"The checkpoint {where} is kept in {self.run.dir}." if epochs or step else "No checkpoint was written."
        return f"training diverged: {what}; lower train.lr (now {self.recipe['train']['lr']}) and start again. {kept}"

    def _load_state(self, run_dir):
        state = checkpoint.load(run_dir, which="last")
        if self.rank == 0:
            files.remove_temporary(run_dir / "checkpoints")   # left by a kill during a save
        self.model.load_state_dict(state["model"])
        if self.ema is not None:
            load_ema(self.ema, state, run_dir)
        self.opt.load_state_dict(state["optimizer"])
        total = self.sched.total_steps   # of this recipe's schedule, before the checkpoint's replaces it
        self.sched.load_state_dict(state["scheduler"])
        self._check_steps(run_dir, state)
        if self.sched.total_steps != total:   # --set train.epochs=N
            self._stretch_schedule(total)
        self.scaler.load_state_dict(state["scaler"])
        self.best = state["best"]
        self.bad = state.get("bad", 0)
        step = state.get("step", 0)   # checkpoints from before mid-epoch saves have none
        self.partial = {**state.get("partial", {}), "rng": state["rng"]}
        if not step:
            set_rng_state(state["rng"])
        if self.rank == 0:
            rundir.truncate_metrics(run_dir, state["epoch"])
        if self.progress:
            where = f"step {step} of epoch {state['epoch'] + 1}" if step else f"epoch {state['epoch']}"
            tqdm.write(f"Resuming {run_dir} after {where} of {self.recipe['train']['epochs']}.")
        return state["epoch"], step


def finite(model):
    return all(torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point())


def rng_state():
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
