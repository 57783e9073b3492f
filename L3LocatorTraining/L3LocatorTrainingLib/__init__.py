"""Qt-free parts of the L3LocatorTraining Slicer module, one job a file.

* :mod:`.process`: the ``l3locator train`` command line, and running it in the background;
* :mod:`.monitor`: what the run's ``L3LOCATOR_PROGRESS`` lines say so far;
* :mod:`.summary`: what a training folder holds, counted off the UI thread;
* :mod:`.report`: the cross-validation report, as text and as a plot in the scene.

The widget polls :class:`.process.TrainingRun` and :class:`.summary.FolderSummaryTask` with a
timer on Slicer's main thread; their own threads only read and queue, so nothing touches Qt or
MRML off the main thread.
"""
