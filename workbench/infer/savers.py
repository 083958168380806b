"""How `restore` writes a restored photo: in the photo's own kind, or in colour where the task makes colour."""
from workbench.api.contracts import capability
from workbench.images.files import write_image


def photo(out, dst, *, replace, look, chain, colour=False):
    """The photo's own kind (gray, 16-bit, palette, transparency), except where the task is colour itself
    (a colorizer's chain keeps luma; a stylizer paints a gray photo in its style image's colours)."""
    colour = colour or any(capability(deg, "keeps_luma") for _, deg in chain)
    write_image(out, dst, replace=replace, look=look.with_kind("RGB") if colour else look)


def colour(out, dst, **kw):
    """`photo`, always in RGB (with the photo's transparency): a stylizer's output."""
    photo(out, dst, colour=True, **kw)
