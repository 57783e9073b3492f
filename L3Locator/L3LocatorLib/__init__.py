"""Qt-free parts of the L3Locator Slicer module.

Everything here works on an MRML scene (``slicer.mrmlScene``) without ``qt``, ``ctk`` or
``slicer.app``, so the same code runs inside 3D Slicer, in ``Slicer --no-main-window`` batch
runs, and under plain Python with the ``slicer-core`` wheel (see :mod:`L3LocatorLib.headless`).

The core library ``l3locator`` (and so torch) is imported lazily, inside the functions that need
it: Slicer loads the module before the user has agreed to install the Python dependencies.
"""
