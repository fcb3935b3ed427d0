"""Training the pix2pix GAN: losses and steps, schedules, the fit loop and checkpoints."""
