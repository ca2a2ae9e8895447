"""scripts/proxy_curve.py: its optimizer points become the library programs with those constants."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

import dsl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from proxy_curve import parse_point, with_constants  # noqa: E402


def test_points_parse_with_and_without_weight_decay():
    assert parse_point("lion:0.001:0.0316") == ("lion", 0.001, 0.0316)
    assert parse_point("signsgd:3e-3") == ("signsgd", 0.003, None)
    for bad in ("lion", ":0.1", "lion:1:2:3"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_point(bad)


def test_constants_land_on_the_learning_rate_and_the_decay():
    # By hand: the library's lion (dsl/programs/lion.txt) with lr 0.002 and decay 0.5.
    expected = dsl.parse(
        "def train(w, g, m, lr):\n"
        "  update = interp(g, m, 0.9)\n"
        "  update = sign(update)\n"
        "  m = interp(g, m, 0.99)\n"
        "  wd = w * 0.5\n"
        "  update = update + wd\n"
        "  lr = lr * 0.002\n"
        "  update = update * lr\n"
        "  return update, m\n"
    )
    assert with_constants("lion", 0.002, 0.5).to_text() == expected.to_text()
    with pytest.raises(SystemExit, match="no weight decay"):
        with_constants("signsgd", 0.01, 0.1)
