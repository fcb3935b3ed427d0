"""Relevance mass accuracy and pointing game on hand-made maps."""

from __future__ import annotations

import math

import pytest
import torch

from endoxai.explain.localisation import pointing_game, relevance_mass_accuracy


def test_relevance_mass_accuracy_and_pointing_game_by_hand():
    maps = torch.tensor([
        [[3.0, -5.0], [1.0, 0.0]],   # positive mass 4, 3 of it inside; max inside
        [[-1.0, 2.0], [6.0, 0.0]],   # positive mass 8, 2 inside; max (6) outside
        [[-1.0, -2.0], [0.0, 0.0]],  # no positive relevance
        [[1.0, 0.0], [0.0, 0.0]],    # empty mask
    ])
    masks = torch.tensor([
        [[True, True], [False, False]],
        [[True, True], [False, False]],
        [[True, False], [False, False]],
        [[False, False], [False, False]],
    ])
    mass = relevance_mass_accuracy(maps, masks)
    assert mass[:2].tolist() == pytest.approx([0.75, 0.25])
    assert math.isnan(mass[2]) and mass[3].item() == 0.0
    hits = pointing_game(maps, masks)
    assert hits[:2].tolist() == [1.0, 0.0]
    assert math.isnan(hits[2]) and math.isnan(hits[3])
