"""benchmarks/throughput_data.py: the loader and scale measurements return complete rows (no timing assertions)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import throughput  # noqa: E402
import throughput_data  # noqa: E402


def test_loader_rates_times_a_recipe_as_training_builds_it():
    rows = throughput_data.loader_rates(recipes=["decrappify"], sizes=(32,), workers=(0,), seconds=0.2)
    assert len(rows) == 1
    row = rows[0]
    assert set(row) == {"recipe", "chain", "size", "workers", "batch_size", "pairs_per_s", "first_batch_s"}
    assert (row["recipe"], row["size"], row["workers"], row["batch_size"]) == ("decrappify", 32, 0, 16)
    assert row["chain"] == 'downsample(scale=2) > jpeg(quality=[10, 70]) > watermark(kind="text", words="numbers")'
    assert row["pairs_per_s"] > 0 and row["first_batch_s"] > 0


def test_the_benchmark_covers_every_shipped_recipe():
    names = throughput.builtin_recipes()
    assert {"classify", "superres", "dejpeg", "inpaint"} <= set(names)


def test_folder_scale_runs_a_fresh_process_over_a_generated_folder():
    rows = throughput_data.folder_scale(counts=(50,), n_batches=3)
    assert len(rows) == 1
    row = rows[0]
    assert row["images"] == 50 and row["file_bytes"] > 0
    for key in ("peak_rss_mb", "worker_peak_rss_mb", "setup_s", "first_batch_s", "from_spawn_s", "batches_per_s"):
        assert row[key] > 0, key


def test_prepared_scale_prepares_then_iterates_in_a_fresh_process():
    rows = throughput_data.prepared_scale(counts=(40,), n_batches=3)
    assert len(rows) == 1 and rows[0]["images"] == 40 and rows[0]["prepare_s"] > 0
    assert rows[0]["peak_rss_mb"] > 0 and rows[0]["batches_per_s"] > 0


def test_photo_rows_measure_the_loader_on_any_source():
    import throughput_photos

    rate = throughput_photos.loader_rate("colorize", "sample", 32)
    assert rate > 0 and throughput_photos.epoch_steps("colorize", "sample", 32, cap=5) == 5
