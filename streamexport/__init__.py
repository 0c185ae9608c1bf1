"""streamexport: stream PyTorch checkpoints of any size into TorchLean's JSON.

    streamexport.export("model.pt", "model.json")              # -> ExportReport
    streamexport.dumps(tensor)                                  # -> bytes: json.dumps(t.tolist()), exactly
    streamexport.verify("model.json", against="model.pt")      # -> VerifyReport
"""
from .errors import StreamExportError
from .export import ExportReport, dumps, export
from .verify import VerifyReport, verify

__version__ = "0.1.0"

__all__ = ["export", "dumps", "verify", "ExportReport", "VerifyReport", "StreamExportError",
           "__version__"]
