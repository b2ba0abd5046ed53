import cv2
import numpy as np

from common.plot import bar_plot, line_plot


def test_line_plot_draws_each_series(tmp_path):
    x = np.arange(50)
    path = line_plot(tmp_path / "curves.png", {"train": (x, np.exp(-x / 10)), "val": (x, np.exp(-x / 20) + 0.1)},
                     title="loss", xlabel="epoch", ylabel="loss")
    img = cv2.imread(str(path))
    assert img.shape == (420, 720, 3)
    for colour in ((178, 114, 0), (0, 159, 230)):  # both series' colours are on the picture
        assert (np.abs(img.astype(int) - colour).sum(-1) < 30).sum() > 50


def test_line_plot_skips_non_finite_and_handles_one_point(tmp_path):
    line_plot(tmp_path / "a.png", {"x": ([0, 1, 2], [1.0, float("nan"), 2.0])})
    line_plot(tmp_path / "b.png", {"x": ([3], [1.0])})
    assert cv2.imread(str(tmp_path / "b.png")) is not None


def test_bar_plot_positive_and_negative_bars(tmp_path):
    path = bar_plot(tmp_path / "bars.png", ["G1", "G2", "G3", "G4"], {"KD": [1.0, -0.5, 2.0, 0.3],
                                                                      "IPWD": [1.5, 0.5, 2.5, 1.0]},
                    title="gain", ylabel="top-1 gain (%)")
    img = cv2.imread(str(path))
    assert (np.abs(img.astype(int) - (0, 159, 230)).sum(-1) < 30).sum() > 200  # the second group's bars
