from paddleseg.utils.checkpoint import load_entire_model

__all__ = ["load_entire_model"]
