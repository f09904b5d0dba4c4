"""One distribution, one top-level name: envs/, twins/, policies/ install as controlkit.envs/.twins/.policies."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import controlkit

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ("controlkit.envs", "controlkit.twins", "controlkit.policies")


def test_editable_or_source_import_maps_the_folders():
    import importlib

    for name, folder in zip(SUBPACKAGES, ("envs", "twins", "policies")):
        module = importlib.import_module(name)
        assert Path(module.__file__).parent == ROOT / folder
    assert controlkit.__version__ != "0+unknown"


def test_wheel_installs_one_top_level_package(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path / "dist"), str(ROOT)],
        check=True, timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("controlkit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"controlkit", wheel.name.split("-py")[0] + ".dist-info"}
    for sub in ("envs", "twins", "policies"):
        assert f"controlkit/{sub}/__init__.py" in names
    for folder in ("envs", "twins", "policies"):  # every module in the source folders made it into the wheel
        for src in (ROOT / folder).glob("*.py"):
            assert f"controlkit/{folder}/{src.name}" in names, src
    for src in (ROOT / "controlkit").rglob("*.py"):  # and every subpackage of the core (pyproject lists them)
        assert src.relative_to(ROOT).as_posix() in names, src

    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
        check=True, timeout=300,
    )
    code = "import controlkit.envs, controlkit.twins, controlkit.policies as p, controlkit.runner.cli; print(p.__file__)"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(site), "PYTHONNOUSERSITE": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith(str(site))


def test_the_checkout_imports_whole_without_the_install_mapping():
    # `python -m pytest` from the root puts the checkout ahead of a non-editable install: with no editable finder
    # to map envs/, twins/ and policies/ into the package, they must still be found beside it.
    code = ("import sys; sys.meta_path = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]; "
            "import controlkit.envs, controlkit.twins, controlkit.policies as p; print(p.__file__)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()) == ROOT / "policies" / "__init__.py"
