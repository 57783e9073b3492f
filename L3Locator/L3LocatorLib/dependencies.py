"""The Python packages both L3Locator modules need inside 3D Slicer, installed on first use.

One requirements file serves both modules: ``L3Locator/Resources/requirements.txt`` (ranges, not
pins: extensions share Slicer's Python environment). :func:`ensureDependencies` is called when a
button that needs the packages is pressed, never at import: Slicer loads the modules before
anyone has agreed to install anything.

* PyTorch comes from the PyTorch extension's ``PyTorchUtils`` when that extension is installed
  (the extension depends on it): it picks the CUDA or CPU build that fits the computer and asks
  before installing.
* Everything still missing is installed by Slicer's ``slicer.packaging.pip_ensure``, which
  lists the packages and asks before installing.
"""

from __future__ import annotations

from pathlib import Path

#: The requirements of both modules.
REQUIREMENTS_FILE = Path(__file__).resolve().parents[1] / "Resources" / "requirements.txt"


def ensureDependencies(requester: str, requirementsFile: Path = REQUIREMENTS_FILE) -> bool:
    """Make sure the packages of ``requirementsFile`` are installed, asking the user first.

    Returns False when the user declined (after telling them what is missing).

    Raises:
        subprocess.CalledProcessError: pip failed.
    """
    import slicer
    import slicer.packaging

    requirements = slicer.packaging.load_requirements(requirementsFile)
    if not _ensureTorchFromExtension(requirements, requester):
        return False
    try:
        slicer.packaging.pip_ensure(requirements, requester=requester)
    except RuntimeError:  # the user declined
        slicer.util.warningDisplay(f"{requester} cannot run without these Python packages: {', '.join(map(str, requirements))}.")
        return False
    return True


def _ensureTorchFromExtension(requirements, requester: str) -> bool:
    """Install torch (and torchvision) with the PyTorch extension when it is there and torch is
    missing; False when the user declined."""
    import slicer

    byName = {requirement.name.lower(): requirement for requirement in requirements}
    if "torch" not in byName:
        return True
    try:
        import PyTorchUtils
    except ModuleNotFoundError:
        return True  # pip_ensure installs torch like any other package
    torchLogic = PyTorchUtils.PyTorchUtilsLogic()
    if torchLogic.torchInstalled():
        return True
    torch = torchLogic.installTorch(
        askConfirmation=True,
        torchVersionRequirement=str(byName["torch"].specifier),
        torchvisionVersionRequirement=str(byName["torchvision"].specifier) if "torchvision" in byName else "",
    )
    if torch is None:
        slicer.util.warningDisplay(f"{requester} needs PyTorch; it was not installed.")
        return False
    return True
