"""`workbench prepare`: cut photos into sub-images, stored as WebDataset shards for fast training."""
import click

from workbench.data import prepare as engine


@click.command()
@click.argument("data")
@click.option("-o", "--out", "outdir", required=True, type=click.Path(file_okay=False), help="New (or empty) folder for the shards.")
@click.option("--size", type=int, default=engine.SIZE, show_default=True, help="Sub-image side in pixels; smaller photos are kept whole.")
@click.option("--step", type=int, default=engine.STEP, show_default=True, help="Pixels between sub-images (1 to --size); less than --size overlaps them.")
@click.option("--thresh", type=int, default=engine.THRESH, show_default=True,
              help="Add a last sub-image at the border when more than this many pixels would be left over.")
@click.option("--shard-size", type=int, default=engine.SHARD_SIZE, show_default=True, help="Sub-images per shard file.")
@click.option("--workers", type=int, default=-1, show_default=True,
              help="Processes cutting and encoding photos (-1: one per core, 0: this one); the output is the same.")
def prepare(data, outdir, size, step, thresh, shard_size, workers):
    """Cut the photos of DATA into sub-images stored as WebDataset shards in OUT, as BasicSR does for DIV2K.

    DATA is a folder of photos (class sub-folders give labels), a .zip of one, a Tiny ImageNet root
    or `sample`. Train on the result with `workbench run RECIPE --data OUT`.
    """
    done = engine.prepare(data, outdir, size=size, step=step, thresh=thresh, shard_size=shard_size, workers=workers)
    skipped = f"; {len(done['skipped'])} unreadable photo(s) skipped" if done["skipped"] else ""
    shards = f"{done['shards']} shard" + ("s" if done["shards"] != 1 else "")
    click.echo(f"Prepared {done['count']} sub-images of {done['photos']} photos ({shards}, "
               f"{done['bytes'] / 1e6:.1f} MB) in {outdir}; train with: workbench run RECIPE --data {outdir}{skipped}")
