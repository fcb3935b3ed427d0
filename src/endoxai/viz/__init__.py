"""Pictures of relevance and masks: diverging heatmaps, overlays on the image, matplotlib figures.

``heatmaps`` and ``overlays`` are pure numpy (uint8 RGB out) so an HTML report can reuse them
without matplotlib; ``figures`` builds matplotlib figures without pyplot (no display, no global
backend switch).
"""

from endoxai.viz.heatmaps import channel_sum, heatmap_rgb, symmetric_limit
from endoxai.viz.overlays import error_overlay, overlay_heatmap, overlay_mask

__all__ = ["channel_sum", "error_overlay", "heatmap_rgb", "overlay_heatmap", "overlay_mask",
           "symmetric_limit"]
