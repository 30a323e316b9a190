"""Projects: a folder with ``dataflow.yaml`` and the folders for models, rules, dashboards, queries.

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp()) / "demo"
    >>> [p.name for p in init_project(root)]
    ['dataflow.yaml', 'models', 'quality', 'dashboards', 'queries', '.gitignore']
"""

from __future__ import annotations

from pathlib import Path

from dataflow.config import CONFIG_FILE
from dataflow.errors import ConfigError

PROJECT_FOLDERS = ("models", "quality", "dashboards", "queries")

_GITIGNORE = "# Data and state that Dataflow writes; the code of the project is everything else.\n"
_GITIGNORE += "/warehouse/\n/.dataflow/\n"


def config_template() -> str:
    """The commented ``dataflow.yaml`` that ``dataflow init`` writes (all defaults shown)."""
    return (Path(__file__).parent / "templates" / CONFIG_FILE).read_text("utf-8")


def init_project(root: str | Path, *, force: bool = False) -> list[Path]:
    """Scaffold a project folder; return what was created.

    Raises:
        ConfigError: ``dataflow.yaml`` exists already and ``force`` is false.
    """
    root = Path(root)
    config = root / CONFIG_FILE
    if config.exists() and not force:
        raise ConfigError(f"{config}: already exists — pass --force to overwrite it")
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{root}: is a file — choose a folder name for the project")
    root.mkdir(parents=True, exist_ok=True)
    created = [config]
    config.write_text(config_template(), encoding="utf-8")
    for name in PROJECT_FOLDERS:
        folder = root / name
        folder.mkdir(exist_ok=True)
        keep = folder / ".gitkeep"
        if not any(folder.iterdir()):
            keep.touch()
        created.append(folder)
    ignore = root / ".gitignore"
    if not ignore.exists():
        ignore.write_text(_GITIGNORE, encoding="utf-8")
        created.append(ignore)
    return created
