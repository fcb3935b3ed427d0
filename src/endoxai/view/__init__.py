"""``endoxai view``: a local web page that explains the model's mask pixel by pixel, on demand.

``relevance`` (LRP with a cached forward pass), ``store`` (images by id, upload limits),
``viewer`` (model, predictions, answers), ``render`` (PNG / npz), ``app`` (the web API),
``web`` (headers, Host check), ``server`` (binding, uvicorn); the page is in ``static/``.
"""

DEFAULT_HOST = "127.0.0.1"  # this machine only: the viewer has no authentication
DEFAULT_PORT = 7860
