"""The folders of MASKROOM_HOME that must exist before anything runs.

Created on demand by `prepare_home` and `serve`, never at import: SQLite needs
the home folder for its file, and the file-system broker of embedded mode needs
its folders before the first task is sent or received.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

_BROKER_FOLDER_OPTIONS = ("data_folder_in", "data_folder_out", "control_folder", "processed_folder")


def home_folders_create() -> list[Path]:
    """Create MASKROOM_HOME and, in embedded mode, the broker's folders; return them."""
    folders = [Path(settings.MASKROOM_HOME)]
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    for key in _BROKER_FOLDER_OPTIONS:
        if isinstance(options.get(key), str):
            folders.append(Path(options[key]))
    folders = list(dict.fromkeys(folders))  # the queue folder is both "in" and "out"
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    return folders
