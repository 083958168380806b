"""The trainer-vs-hand-loop benchmark compares like with like: both loops make the same update."""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import throughput_train  # noqa: E402


def test_hand_loop_and_trainer_make_the_same_update():
    trainer, batches = throughput_train.in_memory_trainer("superres", size=16, batch=2, n_batches=2,
                                                          overrides=["model.widths=[8, 16]"])
    hand = throughput_train.hand_loop(trainer, batches)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer._train_epoch(0)
    hand()
    ours, theirs = trainer.model.state_dict(), hand.model.state_dict()
    assert any(not torch.equal(before[k], ours[k]) for k in ours)   # it trained
    assert all(torch.allclose(ours[k].float(), theirs[k].float(), atol=1e-5) for k in ours)


def test_benchmark_rows_have_their_figures():
    row = throughput_train.trainer_vs_hand_loop(size=16, batch=2, n_batches=1, rounds=1, overrides=["model.widths=[8, 16]"])
    assert row["workbench_img_s"] > 0 and row["hand_img_s"] > 0 and row["ratio"] > 0
    rows = throughput_train.unet_variants(size=16, batch=2, steps=1, rounds=1, model_spec={"widths": [8, 16]}, peak_sizes=(256,))
    assert [r["variant"] for r in rows] == [v[0] for v in throughput_train.VARIANTS]
    assert all(r["flops_per_step"] > 0 and r["img_s"] > 0 and r["matmul_peak_gflop_s"] > 0 for r in rows)
