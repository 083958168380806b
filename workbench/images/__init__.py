"""Photos in and out: safe reading, atomic writing, 8-bit PSNR/SSIM, masks, labelled grids."""
