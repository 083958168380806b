"""Using trained restorers on photos: tiled restore, outpainting a panorama, degrading photos."""
