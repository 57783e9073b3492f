"""The models shipped inside the package (files beside this one), found without importing torch.

``default.pt`` is the model ``l3locator find`` uses without ``--model``; ``default.md`` is its
model card. The Slicer modules list :data:`DEFAULT_MODEL_PATH` as the default choice.
"""

from pathlib import Path

#: The shipped default model file (a float16 ``l3locator-model``; see ``default.md``).
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "default.pt"
