"""Pictures of relevance and masks: diverging heatmaps, overlays on the image, figures.

``heatmaps`` and ``overlays`` are pure numpy (uint8 RGB out) so an HTML report can reuse them
without matplotlib; an explanation's figures (``figures``, ``flow``) are drawn with Pillow
(``canvas``), the plots that compare methods (``faithfulness``, ``sanity``) with matplotlib's
object-oriented API (no pyplot, no display, no global backend switch).
"""

from endoxai.viz.heatmaps import channel_sum, heatmap_rgb, symmetric_limit
from endoxai.viz.overlays import error_overlay, overlay_heatmap, overlay_mask

__all__ = ["channel_sum", "error_overlay", "heatmap_rgb", "overlay_heatmap", "overlay_mask",
           "symmetric_limit"]
