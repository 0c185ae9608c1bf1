"""streamexport: stream PyTorch checkpoints of any size into TorchLean's JSON.

    streamexport.export("model.pt", "model.json")          # -> ExportReport
    streamexport.dumps(tensor)                              # -> bytes: json.dumps(t.tolist()), exactly
"""
from .errors import StreamExportError
from .export import ExportReport, dumps, export

__version__ = "0.1.0"

__all__ = ["export", "dumps", "ExportReport", "StreamExportError", "__version__"]
