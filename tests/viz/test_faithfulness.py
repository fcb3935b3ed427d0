"""The faithfulness figure: one line per method and panel, the random floor dashed black, one
legend below both panels, curves of the wrong length left out."""

from endoxai.viz.faithfulness import faithfulness_figure
from endoxai.viz.style import METHOD_COLOURS


def test_lines_follow_the_summary():
    fractions = [0.0, 0.05, 0.1]
    summary = {
        "lrp:paper": {"curve_morf": [2.0, 0.5, -1.0], "curve_lerf": [2.0, 1.9, 1.8]},
        "gradient": {"curve_morf": [2.0, 1.0, 0.0], "curve_lerf": [2.0, 1.5, 1.0]},
        "random": {"curve_morf": [2.0, 1.8, 1.6], "curve_lerf": [2.0, 1.8, 1.6]},
        "broken": {"curve_morf": [1.0], "curve_lerf": []},
    }
    fig = faithfulness_figure(summary, fractions, title="t", floor="random")
    morf, lerf = fig.axes
    for ax, key in ((morf, "curve_morf"), (lerf, "curve_lerf")):
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert list(lines) == ["lrp:paper", "gradient", "random"]
        assert list(lines["gradient"].get_xdata()) == [0.0, 5.0, 10.0]
        assert list(lines["gradient"].get_ydata()) == summary["gradient"][key]
        assert lines["random"].get_linestyle() == "--" and lines["random"].get_color() == "black"
        assert lines["lrp:paper"].get_color() == METHOD_COLOURS[0]
        assert lines["gradient"].get_color() == METHOD_COLOURS[1]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["lrp:paper", "gradient",
                                                                  "random"]
    assert fig.get_suptitle() == "t"
