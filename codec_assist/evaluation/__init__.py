"""Stage 6, evaluation: PSNR/SSIM/XPSNR/VMAF, ROI quality, BD-rate."""
