"""Qt-free parts of the L3Locator Slicer modules, one job a file.

* :mod:`.volumes`: a volume node as the core's ``CTVolume`` (local geometry), and points into it;
* :mod:`.markups`: the L3 point markup of a volume and what the model said about it;
* :mod:`.plot`: the per-slice L3 probability table and chart of a volume;
* :mod:`.export`: a volume and its L3 point written as a training case;
* :mod:`.cases`: which files make a training case, and replacing a case as a unit;
* :mod:`.models`: the model files the selector offers, user models, the model in memory;
* :mod:`.dependencies`: the Python packages both modules need, installed on first use;
* :mod:`.files`: file names made from what a user typed.

Everything here works on ``slicer.mrmlScene`` without ``qt``, ``ctk`` or ``slicer.app``. The core
library ``l3locator`` (and so torch) is imported inside the functions that need it: Slicer loads
the modules before the user has agreed to install the Python dependencies.
"""
