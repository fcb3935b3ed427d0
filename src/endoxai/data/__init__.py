"""Datasets (Kvasir-SEG, Kvasir-Instrument, folder pairs, archives), splits, decoding and augmentation."""
